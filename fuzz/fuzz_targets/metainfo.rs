//! Torrent files: any input parses or fails with an error, never panics;
//! strict parsing accepts exactly what has no irregular key and no
//! trailing bytes; what parses is self-consistent (files tile the byte stream, the piece
//! table covers it, the info-hash is the SHA-1 of the raw info bytes), and
//! the derived views (JSON, magnet, slices) can be computed.
#![no_main]

use bt::metainfo::Metainfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let strict = Metainfo::from_bytes_strict(data);
    let Ok(meta) = Metainfo::from_bytes(data) else {
        assert!(strict.is_err());
        return;
    };
    // Bytes after the top-level dictionary are read with a warning; strict
    // refuses them, and irregular keys.
    let root = bt::bencode::Decoder::new()
        .allow_trailing(true)
        .decode(data)
        .expect("decoded once");
    let trailing = root.root.raw().len() < data.len();
    let end = root.root.raw().len();
    let note =
        format!("after the torrent's top-level dictionary, from byte offset {end} (ignored)");
    let warned = meta.warnings.iter().any(|w| w.ends_with(&note));
    assert_eq!(trailing, warned);
    assert_eq!(strict.is_ok(), meta.irregularities.is_empty() && !trailing);
    let info = &meta.info;
    let raw = root.root.get("info").expect("info present").raw();
    assert_eq!(bt::sha1::sha1(raw), meta.info_hash);

    let total: u64 = info.files.iter().map(|f| f.length).sum();
    assert_eq!(total, info.total_length);
    let mut offset = 0;
    for f in &info.files {
        assert_eq!(f.offset, offset);
        offset += f.length;
        let _ = f.display_path();
    }
    let pieces = info.piece_count();
    assert_eq!(
        pieces as u64,
        info.total_length.div_ceil(info.piece_length),
        "piece table must cover the data"
    );
    // Pieces' sizes add up; slices of the first and last piece map to files.
    if pieces > 0 {
        for index in [0, pieces - 1] {
            let size = info.piece_size(index);
            assert!(size > 0 && size <= info.piece_length);
            let slices = info.piece_slices(index);
            let covered: u64 = slices.iter().map(|s| s.length).sum();
            assert_eq!(covered, size);
        }
        let last = info.piece_size(pieces - 1);
        assert_eq!(
            (pieces as u64 - 1) * info.piece_length + last,
            info.total_length
        );
    }
    for (i, _) in info.user_files().take(8) {
        let _ = info.file_pieces(i);
    }
    let _ = meta.to_json(true);
    let _ = meta.magnet();
    let _ = meta.info_hash_hex();
});
