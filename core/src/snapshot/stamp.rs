//! Another generation on a compiled snapshot: the generation and creation time live in
//! the header alone, which its own checksum seals, so changing them does not mean
//! compiling the data again.

use super::format::{header_hash, Header, HEADER_LEN};
use super::{read_header, OpenError};

/// The header of snapshot `bytes` (generation, creation time, payload hash …), checked
/// as opening checks it; the payload is not read.
pub fn header(bytes: &[u8]) -> Result<Header, OpenError> {
    read_header(bytes).map(|(header, _)| header)
}

/// Gives snapshot `bytes` generation `generation`, created at `created_unix`, and
/// reseals the header. The payload (and its hash) is untouched: the result is byte for
/// byte the file compiling the same data as that generation at that time makes. A
/// header that does not check out is refused, not resealed.
pub fn restamp(bytes: &mut [u8], generation: u64, created_unix: i64) -> Result<(), OpenError> {
    let (mut header, table) = read_header(bytes)?;
    header.generation = generation;
    header.created_unix = created_unix;
    header.header_hash = header_hash(&header, table);
    bytes[..HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&header));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dataset;
    use crate::snapshot::{compile, Snapshot};

    #[test]
    fn a_restamped_file_is_the_one_compiled_as_that_generation() {
        let d = Dataset::default();
        let seven = compile(&d, 7).unwrap();
        let created = Snapshot::from_bytes(&seven).unwrap().created_unix();
        let mut restamped = compile(&d, 3).unwrap();
        let compiled = header(&restamped).unwrap();
        restamp(&mut restamped, 7, created).unwrap();
        assert_eq!(restamped, seven);
        assert_eq!(
            header(&restamped).unwrap().payload_hash,
            compiled.payload_hash
        );
        let s = Snapshot::from_bytes(&restamped).unwrap();
        assert_eq!((s.generation(), s.created_unix()), (7, created));
    }

    #[test]
    fn a_damaged_header_is_not_resealed() {
        let mut bytes = compile(&Dataset::default(), 1).unwrap();
        bytes[HEADER_LEN] ^= 1;
        assert!(matches!(
            restamp(&mut bytes, 2, 0),
            Err(OpenError::HeaderChecksum)
        ));
        assert!(matches!(
            restamp(&mut bytes[..10], 2, 0),
            Err(OpenError::Short { .. })
        ));
    }
}
