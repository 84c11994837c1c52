//! Copying a store into another, whatever their backends, and counting
//! what a store holds: `weft migrate`.
//!
//! A copy goes table by table in [`Table::ALL`] order, a page at a time,
//! so memory stays flat however many runs there are; each page is one
//! transaction in the target. Both sides are then read again in full and
//! their [`Tally`]s (per-table counts and an order-independent checksum)
//! compared.
//!
//! Secrets travel sealed, with the store's keycheck: the copy is opened
//! by the same master key as the original, and nothing here needs it.

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

/// Every record of a store, table by table in [`Table::ALL`] order, a page
/// at a time.
struct Pages<'a> {
    store: &'a dyn Store,
    tables: std::slice::Iter<'static, Table>,
    table: Option<Table>,
    after: Option<Cursor>,
    /// Records of the current table read so far.
    read: u64,
}

impl<'a> Pages<'a> {
    fn new(store: &'a dyn Store) -> Pages<'a> {
        let mut tables = Table::ALL.iter();
        let table = tables.next().copied();
        Pages {
            store,
            tables,
            table,
            after: None,
            read: 0,
        }
    }

    /// The next page: its table, its records, and how many of the table's
    /// records have been read with it. `None` after the last table.
    async fn next(&mut self) -> Result<Option<(Table, Vec<Result<Record, Corrupt>>, u64)>, StoreError> {
        let Some(table) = self.table else {
            return Ok(None);
        };
        let page = self
            .store
            .export_page(table, self.after.take(), page_size(table))
            .await?;
        self.read += page.records.len() as u64;
        let read = self.read;
        match page.next {
            Some(next) => self.after = Some(next),
            None => {
                self.table = self.tables.next().copied();
                self.read = 0;
            }
        }
        Ok(Some((table, page.records, read)))
    }
}

impl Scan {
    /// Counts the decoded records of a page, keeps the corrupt ones aside,
    /// and returns the decoded ones.
    fn take(&mut self, records: Vec<Result<Record, Corrupt>>) -> Vec<Record> {
        let mut decoded = Vec::with_capacity(records.len());
        for record in records {
            match record {
                Ok(record) => {
                    self.tally.add(&record);
                    decoded.push(record);
                }
                Err(corrupt) => self.corrupt.push(corrupt),
            }
        }
        decoded
    }
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
    let mut pages = Pages::new(store);
    while let Some((table, records, read)) = pages.next().await? {
        out.take(records).iter().for_each(&mut each);
        progress(table, read);
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
    let mut pages = Pages::new(from);
    while let Some((table, records, read)) = pages.next().await? {
        let records = out.take(records);
        if !records.is_empty() {
            to.import(records).await?;
        }
        progress(table, read);
    }
    Ok(out)
}
