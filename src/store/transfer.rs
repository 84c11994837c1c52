//! Copying a store into another, whatever their backends, and counting
//! what a store holds: `weft migrate`.
//!
//! A copy goes table by table in [`Table::ALL`] order, a page at a time,
//! so memory stays flat however many runs there are; each page is one
//! transaction in the target. Both sides are then read again in full and
//! their [`Tally`]s (per-table counts and an order-independent checksum)
//! compared.

use super::{Corrupt, Cursor, Record, Store, StoreError, Table, Tally};

/// Records per page: few for module bytes (each up to the module size
/// quota), many for the small records.
fn page_size(table: Table) -> usize {
    match table {
        Table::ModuleBytes => 4,
        Table::Workflows => 100,
        _ => 2_000,
    }
}

/// What a pass over a store found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Counts and checksum of every record that decoded.
    pub tally: Tally,
    /// Records that did not.
    pub corrupt: Vec<Corrupt>,
}

/// Reads every record of `store`, table by table, calling `each` with
/// every record and `progress` after every page (the table and how many
/// of its records have been read).
pub async fn scan(
    store: &dyn Store,
    mut each: impl FnMut(&Record),
    mut progress: impl FnMut(Table, u64),
) -> Result<Scan, StoreError> {
    let mut out = Scan::default();
    for table in Table::ALL {
        let mut after: Option<Cursor> = None;
        let mut read = 0u64;
        loop {
            let page = store.export_page(table, after.take(), page_size(table)).await?;
            for record in page.records {
                read += 1;
                match record {
                    Ok(record) => {
                        out.tally.add(&record);
                        each(&record);
                    }
                    Err(corrupt) => out.corrupt.push(corrupt),
                }
            }
            progress(table, read);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    Ok(out)
}

/// Whether `store` holds no record at all.
pub async fn is_empty(store: &dyn Store) -> Result<bool, StoreError> {
    for table in Table::ALL {
        if !store.export_page(table, None, 1).await?.records.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Copies every record of `from` into `to`; returns what was read. A
/// record that does not decode is not copied, and is returned among the
/// scan's corrupt ones.
pub async fn copy(from: &dyn Store, to: &dyn Store, mut progress: impl FnMut(Table, u64)) -> Result<Scan, StoreError> {
    let mut out = Scan::default();
    for table in Table::ALL {
        let mut after: Option<Cursor> = None;
        let mut copied = 0u64;
        loop {
            let page = from.export_page(table, after.take(), page_size(table)).await?;
            let mut records = Vec::with_capacity(page.records.len());
            for record in page.records {
                match record {
                    Ok(record) => {
                        out.tally.add(&record);
                        records.push(record);
                    }
                    Err(corrupt) => out.corrupt.push(corrupt),
                }
            }
            copied += records.len() as u64;
            if !records.is_empty() {
                to.import(records).await?;
            }
            progress(table, copied);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    Ok(out)
}
