//! Reading a history file: mapped into memory when it is a regular file,
//! so a history of hundreds of megabytes is not copied before it is parsed.

use std::path::Path;

/// A history file's bytes: mapped into memory when it is a regular file,
/// else read (a pipe, `/dev/stdin`).
pub enum FileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Read(v) => v,
        }
    }
}

/// The file's bytes. A history of a million lines is some 400 MB: mapping
/// it rather than copying it into a fresh buffer saves about a tenth of
/// `pitfall check`'s CPU time (the copy, and the page faults of the buffer).
pub fn read(path: &Path) -> std::io::Result<FileBytes> {
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return std::fs::read(path).map(FileBytes::Read);
    }
    // SAFETY: the map is only read, and pitfall writes no history while it
    // checks one. A file another process truncates meanwhile makes the read
    // fault (SIGBUS) as a failing disk would; ripgrep and cargo map the
    // files they read on the same terms.
    unsafe { memmap2::Mmap::map(&file) }.map(FileBytes::Mapped)
}

#[cfg(test)]
mod tests {
    use super::{read, FileBytes};

    #[test]
    fn a_regular_file_is_mapped_and_anything_else_read_or_refused() {
        let dir = std::env::temp_dir().join(format!("pitfall-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.jsonl");
        std::fs::write(&path, "{\"t\":0}\n").unwrap();
        let bytes = read(&path).unwrap();
        assert!(matches!(bytes, FileBytes::Mapped(_)));
        assert_eq!(&*bytes, b"{\"t\":0}\n");

        std::fs::write(&path, "").unwrap();
        assert!(
            read(&path).unwrap().is_empty(),
            "an empty file maps to nothing"
        );

        let err = read(&dir).err().expect("a folder is no history");
        assert_eq!(err.kind(), std::io::ErrorKind::IsADirectory);
        assert!(read(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
