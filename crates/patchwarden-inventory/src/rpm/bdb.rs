//! The Berkeley DB `Packages` file of older RPM systems (RHEL/CentOS 7 and 8, Amazon Linux 2, SLES 12),
//! read natively and read-only: a BDB hash database whose values are package header blobs, keyed by
//! the package's record number.
//!
//! Layout (from Berkeley DB's `db_page.h`): page 0 is the metadata page (magic `0x061561` at byte 12 —
//! its byte order tells the file's, page size at 20, encryption algorithm at 24, last page number at
//! 32). Every page starts with a 26-byte header (next page at 16, entry count at 20, high free offset at
//! 22, type at 25). Hash pages (type 13, or 2 for the unsorted pages of old databases) hold an index of
//! 2-byte item offsets, key and value alternating. A value is stored inline (`H_KEYDATA`, type 1, the
//! bytes up to the previous item) or off-page (`H_OFFPAGE`, type 3: first page and total length), in
//! a chain of overflow pages (type 7) whose header's free offset is the number of bytes used.
//! The record with key 0 holds rpm's next instance number, not a header.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::InventoryError;

const MAGIC_HASH: u32 = 0x0006_1561;
const PAGE_HEADER: usize = 26;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;

struct Db {
    file: File,
    page_size: usize,
    last_page: u32,
    big_endian: bool,
}

impl Db {
    fn u16(&self, b: &[u8], at: usize) -> u16 {
        let v = [b[at], b[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    }
    fn u32(&self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    }
    fn page(&self, n: u32, buf: &mut [u8]) -> Result<(), String> {
        if n > self.last_page {
            return Err(format!(
                "page {n} is beyond the last page {}",
                self.last_page
            ));
        }
        self.file
            .read_exact_at(buf, u64::from(n) * self.page_size as u64)
            .map_err(|e| format!("page {n}: {e}"))
    }
}

/// Calls `f` with each package header blob and its record number, naming the page on failure.
pub fn for_each_blob(
    path: &Path,
    mut f: impl FnMut(u32, &[u8]) -> Result<(), String>,
) -> Result<(), InventoryError> {
    let file = File::open(path).map_err(|e| InventoryError::io(path, e))?;
    let mut meta = [0u8; 512];
    file.read_exact_at(&mut meta, 0).map_err(|_| {
        InventoryError::corrupt(path, None, "shorter than a Berkeley DB metadata page")
    })?;
    let big_endian = match (
        u32::from_le_bytes(meta[12..16].try_into().unwrap()),
        u32::from_be_bytes(meta[12..16].try_into().unwrap()),
    ) {
        (MAGIC_HASH, _) => false,
        (_, MAGIC_HASH) => true,
        _ => {
            return Err(InventoryError::corrupt(
                path,
                None,
                "not a Berkeley DB hash database (wrong magic number)",
            ))
        }
    };
    let mut db = Db {
        file,
        page_size: 0,
        last_page: 0,
        big_endian,
    };
    db.page_size = db.u32(&meta, 20) as usize;
    db.last_page = db.u32(&meta, 32);
    if !(512..=65536).contains(&db.page_size) || !db.page_size.is_power_of_two() {
        return Err(InventoryError::corrupt(
            path,
            None,
            format!("invalid page size {}", db.page_size),
        ));
    }
    if meta[24] != 0 {
        return Err(InventoryError::corrupt(
            path,
            None,
            "the database is encrypted",
        ));
    }
    let mut page = vec![0u8; db.page_size];
    let mut overflow = vec![0u8; db.page_size];
    for n in 1..=db.last_page {
        let at = |what: String| InventoryError::corrupt(path, Some(format!("page {n}")), what);
        db.page(n, &mut page).map_err(at)?;
        if page[25] != P_HASH && page[25] != P_HASH_UNSORTED {
            continue;
        }
        let entries = db.u16(&page, 20) as usize;
        if !entries.is_multiple_of(2) || PAGE_HEADER + entries * 2 > db.page_size {
            return Err(at(format!("hash page with {entries} entries")));
        }
        let offsets: Vec<usize> = (0..entries)
            .map(|i| db.u16(&page, PAGE_HEADER + i * 2) as usize)
            .collect();
        // Items are packed from the end of the page backwards: item i ends where item i-1 starts.
        let item = |i: usize| -> Result<&[u8], InventoryError> {
            let start = offsets[i];
            let end = if i == 0 { db.page_size } else { offsets[i - 1] };
            if start < PAGE_HEADER + entries * 2 || start >= end || end > db.page_size {
                return Err(at(format!("item {i} spans bytes {start}..{end}")));
            }
            Ok(&page[start..end])
        };
        for pair in 0..entries / 2 {
            let key = item(pair * 2)?;
            let value = item(pair * 2 + 1)?;
            let record = if key[0] == H_KEYDATA && key.len() == 5 {
                db.u32(key, 1)
            } else {
                u32::MAX
            };
            if record == 0 {
                continue; // rpm's "next instance number" record
            }
            let record_name = |what: String| {
                InventoryError::corrupt(path, Some(format!("page {n}, record {record}")), what)
            };
            match value[0] {
                H_KEYDATA => f(record, &value[1..]).map_err(record_name)?,
                H_OFFPAGE if value.len() >= 12 => {
                    let (mut next, total) = (db.u32(value, 4), db.u32(value, 8) as usize);
                    let mut blob = Vec::with_capacity(total);
                    let mut hops = 0;
                    while next != 0 {
                        hops += 1;
                        if hops > db.last_page {
                            return Err(record_name("overflow chain loops".into()));
                        }
                        db.page(next, &mut overflow).map_err(record_name)?;
                        if overflow[25] != P_OVERFLOW {
                            return Err(record_name(format!(
                                "page {next} in the overflow chain has type {}",
                                overflow[25]
                            )));
                        }
                        let used = db.u16(&overflow, 22) as usize;
                        if PAGE_HEADER + used > db.page_size {
                            return Err(record_name(format!(
                                "overflow page {next} claims {used} bytes"
                            )));
                        }
                        blob.extend_from_slice(&overflow[PAGE_HEADER..PAGE_HEADER + used]);
                        next = db.u32(&overflow, 16);
                    }
                    if blob.len() != total {
                        return Err(record_name(format!(
                            "overflow chain holds {} bytes, the item says {total}",
                            blob.len()
                        )));
                    }
                    f(record, &blob).map_err(record_name)?;
                }
                other => return Err(record_name(format!("unsupported hash item type {other}"))),
            }
        }
    }
    Ok(())
}
