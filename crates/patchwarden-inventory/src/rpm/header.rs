//! The RPM header format, as stored in the rpm database: a count of index entries (`il`) and the size of
//! the data store (`dl`), both big-endian `u32`; `il` entries of 16 bytes (tag, type, offset, count);
//! then `dl` bytes of data. Every offset and count is checked against the blob before use.

pub const TAG_NAME: u32 = 1000;
pub const TAG_VERSION: u32 = 1001;
pub const TAG_RELEASE: u32 = 1002;
pub const TAG_EPOCH: u32 = 1003;
pub const TAG_INSTALLTIME: u32 = 1008;
pub const TAG_ARCH: u32 = 1022;
pub const TAG_SOURCERPM: u32 = 1044;
pub const TAG_DIRINDEXES: u32 = 1116;
pub const TAG_BASENAMES: u32 = 1117;
pub const TAG_DIRNAMES: u32 = 1118;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// rpm's own limits (`hdrchkTags`, `hdrchkData`).
const MAX_TAGS: usize = 0xffff;
const MAX_DATA: usize = 256 * 1024 * 1024;

#[derive(Clone, Copy)]
struct Entry {
    tag: u32,
    kind: u32,
    offset: usize,
    count: usize,
}

/// A parsed header borrowing its blob.
pub struct Header<'a> {
    entries: Vec<Entry>,
    data: &'a [u8],
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Header<'a> {
    pub fn parse(blob: &'a [u8]) -> Result<Header<'a>, String> {
        if blob.len() < 8 {
            return Err(format!(
                "header blob of {} bytes is shorter than its 8-byte preamble",
                blob.len()
            ));
        }
        let il = be32(blob, 0) as usize;
        let dl = be32(blob, 4) as usize;
        if il == 0 || il > MAX_TAGS {
            return Err(format!("header index count {il} is out of range"));
        }
        if dl > MAX_DATA {
            return Err(format!("header data size {dl} is out of range"));
        }
        let data_start = 8 + il * 16;
        if blob.len() < data_start + dl {
            return Err(format!(
                "header blob is truncated: {} bytes, index and data need {}",
                blob.len(),
                data_start + dl
            ));
        }
        let data = &blob[data_start..data_start + dl];
        let mut entries = Vec::with_capacity(il);
        for i in 0..il {
            let at = 8 + i * 16;
            let e = Entry {
                tag: be32(blob, at),
                kind: be32(blob, at + 4),
                offset: be32(blob, at + 8) as usize,
                count: be32(blob, at + 12) as usize,
            };
            if e.offset > dl {
                return Err(format!(
                    "tag {} points at offset {} beyond the {dl}-byte data store",
                    e.tag, e.offset
                ));
            }
            entries.push(e);
        }
        Ok(Header { entries, data })
    }

    fn entry(&self, tag: u32) -> Option<Entry> {
        self.entries.iter().rev().find(|e| e.tag == tag).copied()
    }

    fn strings_at(&self, e: Entry) -> Result<Vec<&'a str>, String> {
        // Each string takes at least its terminating NUL: a count the data store cannot hold is
        // refused before anything is allocated for it (found by fuzzing: a count of 2^28).
        let room = self.data.len() - e.offset.min(self.data.len());
        if e.count > room {
            return Err(format!(
                "tag {} claims {} strings in the {room} bytes after its offset",
                e.tag, e.count
            ));
        }
        let mut out = Vec::with_capacity(e.count);
        let mut at = e.offset;
        for _ in 0..e.count {
            let rest = &self.data[at.min(self.data.len())..];
            let len = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| format!("string of tag {} is not terminated", e.tag))?;
            out.push(
                std::str::from_utf8(&rest[..len])
                    .map_err(|_| format!("string of tag {} is not UTF-8", e.tag))?,
            );
            at += len + 1;
        }
        Ok(out)
    }

    /// A string tag (`STRING`, or the first of an `I18NSTRING` or `STRING_ARRAY`).
    pub fn string(&self, tag: u32) -> Result<Option<&'a str>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        match e.kind {
            TYPE_STRING | TYPE_I18NSTRING | TYPE_STRING_ARRAY => {
                Ok(self.strings_at(Entry { count: 1, ..e })?.first().copied())
            }
            other => Err(format!("tag {tag} has type {other}, expected a string")),
        }
    }

    pub fn string_array(&self, tag: u32) -> Result<Vec<&'a str>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(Vec::new());
        };
        match e.kind {
            TYPE_STRING_ARRAY | TYPE_I18NSTRING => self.strings_at(e),
            other => Err(format!(
                "tag {tag} has type {other}, expected a string array"
            )),
        }
    }

    pub fn int32_array(&self, tag: u32) -> Result<Vec<u32>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(Vec::new());
        };
        if e.kind != TYPE_INT32 {
            return Err(format!("tag {tag} has type {}, expected INT32", e.kind));
        }
        let end = e
            .offset
            .checked_add(e.count.checked_mul(4).ok_or("count overflows")?)
            .ok_or("offset overflows")?;
        if end > self.data.len() {
            return Err(format!("INT32 tag {tag} runs past the data store"));
        }
        Ok((0..e.count)
            .map(|i| be32(self.data, e.offset + i * 4))
            .collect())
    }

    pub fn int32(&self, tag: u32) -> Result<Option<u32>, String> {
        Ok(self.int32_array(tag)?.first().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a header blob from (tag, type, payload, count) entries.
    pub(crate) fn blob(entries: &[(u32, u32, Vec<u8>, u32)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, payload, count) in entries {
            if *kind == TYPE_INT32 {
                while data.len() % 4 != 0 {
                    data.push(0);
                }
            }
            for v in [*tag, *kind, data.len() as u32, *count] {
                index.extend_from_slice(&v.to_be_bytes());
            }
            data.extend_from_slice(payload);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    #[test]
    fn a_string_count_the_data_cannot_hold_is_refused_without_allocating_it() {
        let b = blob(&[(
            TAG_BASENAMES,
            TYPE_STRING_ARRAY,
            b"a\0b\0".to_vec(),
            0x1000_0000,
        )]);
        let h = Header::parse(&b).unwrap();
        let e = h.string_array(TAG_BASENAMES).unwrap_err();
        assert!(e.contains("claims 268435456 strings in the 4 bytes"), "{e}");
        let ok = blob(&[(TAG_BASENAMES, TYPE_STRING_ARRAY, b"a\0b\0".to_vec(), 2)]);
        assert_eq!(
            Header::parse(&ok)
                .unwrap()
                .string_array(TAG_BASENAMES)
                .unwrap(),
            ["a", "b"]
        );
        // A string tag reads only its first string, whatever its count says.
        let name = blob(&[(TAG_NAME, TYPE_I18NSTRING, b"bash\0".to_vec(), 0x1000_0000)]);
        assert_eq!(
            Header::parse(&name).unwrap().string(TAG_NAME).unwrap(),
            Some("bash")
        );
    }

    #[test]
    fn reads_tags_and_rejects_truncation() {
        let b = blob(&[
            (TAG_NAME, TYPE_STRING, b"bash\0".to_vec(), 1),
            (TAG_EPOCH, TYPE_INT32, 2u32.to_be_bytes().to_vec(), 1),
        ]);
        let h = Header::parse(&b).unwrap();
        assert_eq!(h.string(TAG_NAME).unwrap(), Some("bash"));
        assert_eq!(h.int32(TAG_EPOCH).unwrap(), Some(2));
        assert_eq!(h.string(TAG_ARCH).unwrap(), None);
        let e = Header::parse(&b[..b.len() - 3]).err().unwrap();
        assert!(e.contains("truncated"), "{e}");
        let bad = blob(&[(TAG_NAME, TYPE_STRING, b"unterminated".to_vec(), 1)]);
        assert!(Header::parse(&bad)
            .unwrap()
            .string(TAG_NAME)
            .unwrap_err()
            .contains("not terminated"));
    }
}
