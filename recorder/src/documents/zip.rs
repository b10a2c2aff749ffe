//! A look into an office file before LibreOffice opens it. PPTX, DOCX and ODP are zip
//! archives; a zip bomb (a few megabytes that unpack to gigabytes) would make LibreOffice fill
//! memory and disk before any time limit bites. The central directory says what each entry
//! unpacks to: more than the limit in all, too many entries, or an entry claiming an absurd
//! ratio is refused without unpacking anything. (An archive that lies about its sizes is still
//! bounded by the conversion's time limit, and LibreOffice checks each entry's size and CRC.)

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// What the archive may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    /// Bytes all entries unpack to, together.
    pub max_unpacked: u64,
    pub max_entries: u64,
    /// Unpacked size over packed size of one entry (above 1 MiB unpacked): office XML packs
    /// about 10:1, a bomb 1000:1.
    pub max_ratio: u64,
}

/// Why an archive is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipRefused {
    #[error("it is not a zip archive, as PPTX, DOCX and ODP files are")]
    NotZip,
    #[error("its archive would unpack to more than {limit_mb} MB (a zip bomb?)")]
    TooLarge { limit_mb: u64 },
    #[error("its archive has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("an entry of its archive unpacks {ratio} times larger than it is packed (a zip bomb?)")]
    Ratio { ratio: u64 },
    #[error("it is a multi-part or ZIP64 archive, which office files never are")]
    Unsupported,
    #[error("cannot read the file: {0}")]
    Io(String),
}

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const EOCD_LEN: u64 = 22;
/// The end record may be followed by a comment of up to 64 KiB.
const MAX_TAIL: u64 = EOCD_LEN + 65_535;
const RATIO_FLOOR: u64 = 1 << 20;

fn u16_at(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u16::from_le_bytes(
        buf.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u32::from_le_bytes(
        buf.get(at..at + 4)?.try_into().ok()?,
    )))
}

/// Checks the archive at `path` against `limits`.
pub fn inspect(path: &Path, limits: ZipLimits) -> Result<(), ZipRefused> {
    let io = |e: std::io::Error| ZipRefused::Io(e.to_string());
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size < EOCD_LEN {
        return Err(ZipRefused::NotZip);
    }
    let tail_len = size.min(MAX_TAIL);
    file.seek(SeekFrom::Start(size - tail_len)).map_err(io)?;
    let mut tail = vec![0; tail_len as usize];
    file.read_exact(&mut tail).map_err(io)?;
    let eocd = (0..=tail.len() - EOCD_LEN as usize)
        .rev()
        .find(|&at| u32_at(&tail, at) == Some(u64::from(EOCD_SIGNATURE)))
        .ok_or(ZipRefused::NotZip)?;
    let field = |offset| u16_at(&tail, eocd + offset).ok_or(ZipRefused::NotZip);
    let (disk, entries_here, entries) = (field(4)?, field(8)?, field(10)?);
    let directory_size = u32_at(&tail, eocd + 12).ok_or(ZipRefused::NotZip)?;
    let directory_at = u32_at(&tail, eocd + 16).ok_or(ZipRefused::NotZip)?;
    if disk != 0 || entries_here != entries || entries == 0xffff || directory_at == 0xffff_ffff {
        return Err(ZipRefused::Unsupported);
    }
    if entries > limits.max_entries {
        return Err(ZipRefused::TooManyEntries {
            limit: limits.max_entries,
        });
    }
    if directory_at.saturating_add(directory_size) > size {
        return Err(ZipRefused::NotZip);
    }
    file.seek(SeekFrom::Start(directory_at)).map_err(io)?;
    let mut directory = vec![0; directory_size as usize];
    file.read_exact(&mut directory).map_err(io)?;
    let mut at = 0usize;
    let mut total = 0u64;
    for _ in 0..entries {
        if u32_at(&directory, at) != Some(u64::from(CENTRAL_SIGNATURE)) {
            return Err(ZipRefused::NotZip);
        }
        let get32 = |offset| u32_at(&directory, at + offset).ok_or(ZipRefused::NotZip);
        let get16 = |offset| u16_at(&directory, at + offset).ok_or(ZipRefused::NotZip);
        let (packed, unpacked) = (get32(20)?, get32(24)?);
        if packed == 0xffff_ffff || unpacked == 0xffff_ffff {
            return Err(ZipRefused::Unsupported);
        }
        total = total.saturating_add(unpacked);
        if total > limits.max_unpacked {
            return Err(ZipRefused::TooLarge {
                limit_mb: limits.max_unpacked >> 20,
            });
        }
        if unpacked > RATIO_FLOOR {
            let ratio = unpacked / packed.max(1);
            if ratio > limits.max_ratio {
                return Err(ZipRefused::Ratio { ratio });
            }
        }
        let lengths = get16(28)? + get16(30)? + get16(32)?;
        at += 46 + lengths as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const LIMITS: ZipLimits = ZipLimits {
        max_unpacked: 100 << 20,
        max_entries: 10,
        max_ratio: 200,
    };

    /// A zip whose entries declare (packed, unpacked) sizes; the data is filler.
    fn archive(entries: &[(u32, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (i, &(packed, unpacked)) in entries.iter().enumerate() {
            let name = format!("e{i}");
            let offset = out.len() as u32;
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&[20, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&packed.to_le_bytes());
            out.extend_from_slice(&unpacked.to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend(std::iter::repeat_n(0u8, packed as usize));
            central.extend_from_slice(&CENTRAL_SIGNATURE.to_le_bytes());
            central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            central.extend_from_slice(&packed.to_le_bytes());
            central.extend_from_slice(&unpacked.to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let directory_at = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&EOCD_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        let n = entries.len() as u16;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&directory_at.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn check(bytes: &[u8]) -> Result<(), ZipRefused> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(bytes).expect("write");
        inspect(file.path(), LIMITS)
    }

    #[test]
    fn ordinary_archives_pass() {
        assert_eq!(check(&archive(&[(100, 900), (20_000, 2_000_000)])), Ok(()));
    }

    #[test]
    fn bombs_and_junk_are_refused() {
        assert_eq!(
            check(&archive(&[(1000, 1_000_000_000)])),
            Err(ZipRefused::TooLarge { limit_mb: 100 })
        );
        assert_eq!(
            check(&archive(&[(1000, 5_000_000)])),
            Err(ZipRefused::Ratio { ratio: 5000 })
        );
        assert_eq!(
            check(&archive(&[(1, 1); 11])),
            Err(ZipRefused::TooManyEntries { limit: 10 })
        );
        assert_eq!(check(b"%PDF-1.4 not a zip at all"), Err(ZipRefused::NotZip));
        let mut cut = archive(&[(100, 900)]);
        cut.truncate(cut.len() - 30);
        assert_eq!(check(&cut), Err(ZipRefused::NotZip));
    }
}
