//! A snapshot file of whatever format version, named without being read: every format
//! keeps the one header and section table (the version says how to read the sections),
//! so the API can serve a file another build compiled, saying which format it is, to
//! the edges that read that format.

use super::format::Header;
use super::{map, read_header_of_any_format, OpenError};
use std::path::Path;

/// The header of the snapshot `file` (`path` only names it in errors), checked as
/// opening checks it (magic, length, header checksum) but for the format version. Only
/// the header and section table are read, however large the file.
pub fn header_of_any_format(file: &std::fs::File, path: &Path) -> Result<Header, OpenError> {
    read_header_of_any_format(&map(file, path)?).map(|(header, _)| header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dataset;
    use crate::snapshot::format::{header_hash, ENTRY_LEN, HEADER_LEN};
    use crate::snapshot::{compile, header, Snapshot};

    /// `bytes` relabelled as format `version`, its header sealed again.
    fn in_format(mut bytes: Vec<u8>, version: u32) -> Vec<u8> {
        let mut h = header(&bytes).unwrap();
        h.version = version;
        let table = HEADER_LEN..HEADER_LEN + ENTRY_LEN * h.section_count as usize;
        h.header_hash = header_hash(&h, &bytes[table]);
        bytes[..HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&h));
        bytes
    }

    fn written(bytes: &[u8]) -> (tempfile::NamedTempFile, std::fs::File) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        let file = std::fs::File::open(f.path()).unwrap();
        (f, file)
    }

    #[test]
    fn a_file_of_another_format_is_named_though_this_build_cannot_read_it() {
        let bytes = in_format(compile(&Dataset::default(), 9).unwrap(), 99);
        let (f, file) = written(&bytes);
        assert!(matches!(
            Snapshot::open(f.path()),
            Err(OpenError::Version { found: 99 })
        ));
        let h = header_of_any_format(&file, f.path()).unwrap();
        assert_eq!((h.version, h.generation), (99, 9));
        assert_eq!(h.file_len, bytes.len() as u64);
    }

    #[test]
    fn a_damaged_or_cut_file_of_any_format_is_refused() {
        let mut bytes = in_format(compile(&Dataset::default(), 9).unwrap(), 99);
        let (f, file) = written(&bytes[..bytes.len() - 1]);
        assert!(matches!(
            header_of_any_format(&file, f.path()),
            Err(OpenError::Length { .. })
        ));
        bytes[HEADER_LEN] ^= 1;
        let (f, file) = written(&bytes);
        assert!(matches!(
            header_of_any_format(&file, f.path()),
            Err(OpenError::HeaderChecksum)
        ));
        bytes[0] = b'X';
        let (f, file) = written(&bytes);
        assert!(matches!(
            header_of_any_format(&file, f.path()),
            Err(OpenError::BadMagic)
        ));
    }
}
