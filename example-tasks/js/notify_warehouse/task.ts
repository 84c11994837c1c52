/**
 * Asks the warehouse nearest the customer to ship a reservation: the
 * TypeScript twin of the Rust `example-tasks/notify_warehouse`, with the
 * same input and output, so it can stand in for that step of the order
 * workflow.
 *
 * It also remembers each shipment in `kv` under `shipment/<order_id>`
 * (committed only if the attempt succeeds), so that a retried or repeated
 * step answers with the warehouse it first chose.
 */

import { task, TaskError, log, kv, context } from 'weft-sdk';

interface Address {
  name: string;
  line1: string;
  city: string;
  postal_code: string;
  country: string;
}

interface Request {
  order_id: string;
  reservation_id: string;
  ship_to: Address;
}

interface Shipment {
  shipment_id: string;
  order_id: string;
  warehouse: string;
  status: 'queued';
}

/** Fails with `invalid_input` unless `value` is an object with exactly `fields`, all strings. */
function expectStrings(value: unknown, where: string, fields: string[]): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TaskError('invalid_input', `${where} must be an object`);
  }
  const record = value as Record<string, unknown>;
  const unknown = Object.keys(record).find((key) => !fields.includes(key));
  if (unknown !== undefined) {
    throw new TaskError('invalid_input', `${where}: unknown field \`${unknown}\``);
  }
  for (const field of fields) {
    if (typeof record[field] !== 'string') {
      throw new TaskError('invalid_input', `${where}: missing string field \`${field}\``);
    }
  }
  return record as Record<string, string>;
}

function warehouseFor(country: string): string {
  switch (country) {
    case 'DE':
    case 'AT':
    case 'CH':
    case 'PL':
    case 'CZ':
      return 'FRA-1';
    case 'US':
    case 'CA':
      return 'NYC-2';
    case 'GB':
    case 'IE':
      return 'LHR-1';
    default:
      return 'AMS-1';
  }
}

export const run = task(async (input: unknown): Promise<Shipment> => {
  const { ship_to: _, ...top } = (input ?? {}) as Record<string, unknown>;
  expectStrings(top, 'the input', ['order_id', 'reservation_id']);
  const request = input as Request;
  const address = expectStrings(request.ship_to, 'ship_to', ['name', 'line1', 'city', 'postal_code', 'country']);
  for (const field of ['name', 'line1', 'city', 'postal_code']) {
    if (address[field].trim() === '') {
      throw new TaskError('invalid_address', `ship_to.${field} is empty`);
    }
  }

  const key = `shipment/${request.order_id}`;
  const earlier = kv.get<Shipment>(key);
  if (earlier !== undefined) {
    log.info(`order ${request.order_id} already went to ${earlier.warehouse} (attempt ${context().attempt})`);
    return earlier;
  }
  const warehouse = warehouseFor(address.country);
  log.info(`reservation ${request.reservation_id} goes out from ${warehouse}`);
  const shipment: Shipment = {
    shipment_id: `shp_${request.order_id}`,
    order_id: request.order_id,
    warehouse,
    status: 'queued',
  };
  kv.set(key, shipment);
  return shipment;
});
