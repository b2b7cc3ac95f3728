use super::*;

/// The generator written the plain way, one word appended at a time, from
/// the start: every range the checkpointed, block-copying generator makes
/// must be the same bytes, including where a word or number is cut off.
fn generate_plainly(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut bytes = Vec::new();
    while bytes.len() < size {
        let r = splitmix64(&mut state);
        bytes.extend_from_slice(WORDS[(r % 32) as usize].as_bytes());
        match (r >> 5) % 8 {
            0 => bytes.extend_from_slice(format!("={} ", (r >> 16) % 100_000).as_bytes()),
            1 => bytes.push(b'\n'),
            _ => bytes.push(b' '),
        }
    }
    bytes.truncate(size);
    bytes
}

fn forget_checkpoints() {
    CHECKPOINTS.with_borrow_mut(VecDeque::clear);
}

#[test]
fn generated_bytes_are_those_of_the_plain_generator() {
    for seed in 0..8 {
        for size in (0..600).chain([4095, 4096, 65_537]) {
            forget_checkpoints();
            assert_eq!(
                Blob::generated(seed, size).to_vec(),
                generate_plainly(size, seed),
                "seed {seed}, size {size}"
            );
        }
    }
}

/// Any range, made from a checkpoint (known or not yet), is that range of
/// the whole content, across checkpoint boundaries and at the very end.
#[test]
fn every_range_is_that_of_the_whole_content() {
    let size = 5 * CHECKPOINT_BYTES + 1234;
    let whole = generate_plainly(size, 3);
    let boundary = CHECKPOINT_BYTES;
    let ranges = [
        0..0,
        0..10,
        boundary - 7..boundary + 7,
        boundary..boundary + 1,
        3 * boundary - 1..4 * boundary + 9,
        size - 1..size,
        size..size,
        0..size,
    ];
    for cold in [true, false] {
        for range in ranges.clone() {
            if cold {
                forget_checkpoints();
            }
            let blob = Blob::generated(3, size).slice(range.clone());
            assert_eq!(blob.len(), range.len());
            assert_eq!(
                blob.to_vec(),
                &whole[range.clone()],
                "{range:?}, cold {cold}"
            );
        }
    }
    let known =
        CHECKPOINTS.with_borrow(|all| all.iter().find(|(s, _)| *s == 3).map(|(_, c)| c.len()));
    assert_eq!(known, Some(6), "a checkpoint per 64 KiB passed");
}

/// Generated content is pinned: a compressed or chunked payload's sizes, and
/// so every payload scenario's history, depend on it. The pins are SHA-256
/// of the bytes, from before payloads were identified by BLAKE3.
#[test]
fn generated_content_is_pinned() {
    let sha256 = |blob: Blob| crate::digest::sha256_hex(&blob.bytes());
    assert_eq!(
        sha256(Blob::generated(7, 1 << 20)),
        "b69ca8b4a10763499065ff07bfb86d4c4d9462942bfeac6f1efbcf0189b845e5"
    );
    assert_eq!(
        sha256(Blob::generated(42, 20 << 20)),
        "dc281c6bb5ed03f78497e1820976898c4c9be91d3f60122f028f64131437ec2c"
    );
}

#[test]
fn a_views_digest_is_that_of_its_bytes() {
    let blob = Blob::generated(9, 3 << 20).slice(1000..(2 << 20) + 17);
    let bytes = Blob::from(blob.to_vec());
    assert_eq!(blob.digest(), bytes.digest());
    assert_eq!(blob.digest(), digest_hex(&blob.bytes()));
    // Remembered: asked again, the same.
    assert_eq!(blob.digest(), bytes.digest());
}

/// Digested with its parts, a view's parts are known afterwards, each the
/// digest of its bytes; the whole is the same digest either way.
#[test]
fn a_digest_with_parts_remembers_each_part() {
    let whole = Blob::generated(21, 1000 * 7 + 300);
    let parts: Vec<Blob> = (0..8)
        .map(|i| whole.slice(i * 1000..((i + 1) * 1000).min(7300)))
        .collect();
    assert!(parts
        .iter()
        .all(|p| known_digest(p.view().unwrap()).is_none()));
    let digest = whole.digest_with_parts(1000);
    assert_eq!(digest, digest_hex(&whole.to_vec()));
    for part in &parts {
        let known = known_digest(part.view().unwrap());
        assert_eq!(known, Some(digest_hex(&part.to_vec())));
    }
    // Known already: the same answer, with or without parts.
    assert_eq!(whole.digest(), digest);
    assert_eq!(Blob::generated(21, 7300).digest_with_parts(999), digest);
    assert_eq!(Blob::from(whole.to_vec()).digest_with_parts(1000), digest);
}

/// A large view's digest is remembered by the fingerprint of its bytes
/// too, so the same bytes copied elsewhere are not hashed again.
#[test]
fn a_large_views_digest_is_found_for_a_copy_of_its_bytes() {
    let view = Blob::generated(11, 3 << 20).slice(77..(2 << 20) + 5);
    let copy = view.to_vec();
    assert!(!crate::digest::is_remembered(&copy));
    let digest = view.digest();
    assert!(crate::digest::is_remembered(&copy));
    assert_eq!(digest_hex(&copy), digest);
}

/// Chunks put back together in order are the content's view again; out of
/// order, with a gap or mixed with stored bytes, they are copied, and the
/// bytes are those of the parts one after the other.
#[test]
fn adjacent_views_join_and_anything_else_is_copied() {
    let whole = Blob::generated(5, 10_000);
    let chunks: Vec<Blob> = (0..10)
        .map(|i| whole.slice(i * 1000..(i + 1) * 1000))
        .collect();
    let joined = Blob::concat(chunks.clone());
    assert_eq!(joined.view(), whole.view());
    assert_eq!(
        Blob::concat(chunks[2..5].to_vec()).view(),
        whole.slice(2000..5000).view()
    );

    let swapped = Blob::concat([chunks[1].clone(), chunks[0].clone()]);
    assert_eq!(swapped.view(), None);
    let expected = [chunks[1].to_vec(), chunks[0].to_vec()].concat();
    assert_eq!(swapped.to_vec(), expected);

    let gap = Blob::concat([chunks[0].clone(), chunks[2].clone()]);
    assert_eq!(gap.view(), None);
    assert_eq!(gap.len(), 2000);

    let other_content = Blob::concat([
        chunks[0].clone(),
        Blob::generated(6, 10_000).slice(1000..2000),
    ]);
    assert_eq!(other_content.view(), None);

    let mixed = Blob::concat([chunks[0].clone(), Blob::from(chunks[1].to_vec())]);
    assert_eq!(mixed, whole.slice(0..2000));
    assert_eq!(Blob::concat([]), Blob::default());
    assert_eq!(
        Blob::concat([Blob::default(), chunks[3].clone()]).view(),
        chunks[3].view()
    );
}

#[test]
fn blobs_are_equal_when_their_bytes_are() {
    let view = Blob::generated(1, 5000);
    assert_eq!(view, Blob::from(view.to_vec()));
    assert_eq!(Blob::from(view.to_vec()), view);
    assert_ne!(view, Blob::generated(2, 5000));
    assert_ne!(view, view.slice(0..4999));
    assert_ne!(view.slice(1..11), view.slice(0..10));
    // The same bytes from a longer content of the same seed.
    assert_eq!(view, Blob::generated(1, 9000).slice(0..5000));
    assert_eq!(Blob::from("abc"), Blob::from(b"abc".to_vec()));
}

#[test]
fn a_blob_crosses_the_wire_as_bytes_or_as_its_view() {
    for blob in [
        Blob::from("small text"),
        Blob::generated(4, 1 << 20).slice(100..200_000),
        Blob::default(),
    ] {
        let json = serde_json::to_string(&blob).unwrap();
        assert!(json.len() < 200, "a view travels as numbers: {json}");
        let back: Blob = serde_json::from_str(&json).unwrap();
        assert_eq!(back, blob);
        assert_eq!(back.view(), blob.view());
    }
    let outside = r#"{"generated":{"seed":1,"size":10,"start":5,"len":6}}"#;
    let err = serde_json::from_str::<Blob>(outside).unwrap_err();
    assert!(err.to_string().contains("outside its content"), "{err}");
}

#[test]
#[should_panic(expected = "out of a blob")]
fn slicing_past_the_end_panics_as_a_slice_does() {
    Blob::from("abc").slice(1..4);
}

#[test]
fn as_a_byte_sequence_a_blob_is_written_as_a_vec_is() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Record {
        #[serde(with = "super::as_byte_seq")]
        value: Blob,
    }
    let view = Blob::generated(2, 40);
    let json = serde_json::to_string(&Record {
        value: view.clone(),
    })
    .unwrap();
    let plain = serde_json::json!({ "value": view.to_vec() }).to_string();
    assert_eq!(json, plain);
    let back: Record = serde_json::from_str(&json).unwrap();
    assert_eq!(back.value, view);
    assert_eq!(back.value.view(), None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Slicing and joining views does to the bytes what slicing and
    /// joining the plain bytes does, whatever the cuts and their order, and
    /// a view's digest is that of its bytes.
    #[test]
    fn views_behave_as_their_bytes(
        seed in proptest::prelude::any::<u64>(),
        size in 0usize..300_000,
        cuts in proptest::collection::vec(0usize..300_000, 0..6),
        order in proptest::collection::vec(0usize..8, 0..8),
    ) {
        let whole = Blob::generated(seed, size);
        let bytes = generate_plainly(size, seed);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (size + 1)).collect();
        cuts.extend([0, size]);
        cuts.sort_unstable();
        let pieces: Vec<(Blob, &[u8])> = cuts
            .windows(2)
            .map(|w| (whole.slice(w[0]..w[1]), &bytes[w[0]..w[1]]))
            .collect();
        for (blob, plain) in &pieces {
            proptest::prop_assert_eq!(&blob.to_vec()[..], *plain);
        }
        let joined = Blob::concat(pieces.iter().map(|(b, _)| b.clone()));
        proptest::prop_assert_eq!(joined.to_vec(), bytes.clone());
        if size > 0 {
            proptest::prop_assert_eq!(joined.view(), whole.view());
        }
        let picked: Vec<usize> = order.into_iter().map(|i| i % pieces.len()).collect();
        let shuffled = Blob::concat(picked.iter().map(|&i| pieces[i].0.clone()));
        let plain: Vec<u8> = picked.iter().flat_map(|&i| pieces[i].1.iter().copied()).collect();
        proptest::prop_assert_eq!(shuffled.to_vec(), plain.clone());
        proptest::prop_assert_eq!(shuffled.digest(), digest_hex(&plain));
    }
}

/// Pieces cover a blob in order, the last shorter, stored or generated.
#[test]
fn pieces_cover_the_blob_in_order() {
    let view = Blob::generated(5, 300_001).slice(17..250_017);
    let stored = Blob::from(view.to_vec());
    for blob in [&view, &stored] {
        let pieces: Vec<bytes::Bytes> = blob.pieces(64 << 10).collect();
        assert_eq!(pieces.len(), 4);
        assert!(pieces[..3].iter().all(|p| p.len() == 64 << 10));
        assert_eq!(pieces.concat(), blob.to_vec());
    }
    assert_eq!(Blob::default().pieces(10).count(), 0);
}

/// After [`Blob::digest_keeping_head`], the beginning of the view it made
/// is read from what it kept (up to [`KEPT_HEAD_BYTES`], in whole pieces of
/// [`DIGEST_PIECE_BYTES`]), and those reads are the generator's bytes; a
/// range across two pieces, past the head, or of another seed is made. A
/// plain digest keeps nothing.
#[test]
fn a_digest_keeps_the_head_of_its_view_for_the_next_read() {
    let size = KEPT_HEAD_BYTES + 3 * DIGEST_PIECE_BYTES;
    let blob = Blob::generated(31, size);
    let plain = generate_plainly(size, 31);
    let first = 5..DIGEST_PIECE_BYTES - 9;
    let last = KEPT_HEAD_BYTES - 100..KEPT_HEAD_BYTES;
    let across = DIGEST_PIECE_BYTES - 1..DIGEST_PIECE_BYTES + 1;
    let past = KEPT_HEAD_BYTES..KEPT_HEAD_BYTES + 1;
    assert!(kept_range(31, &first).is_none());
    Blob::generated(30, size).digest();
    assert!(
        kept_range(30, &first).is_none(),
        "a plain digest keeps nothing"
    );
    blob.digest_keeping_head();
    for (range, kept) in [
        (&first, true),
        (&last, true),
        (&across, false),
        (&past, false),
    ] {
        assert_eq!(kept_range(31, range).is_some(), kept, "{range:?}");
        assert_eq!(blob.slice(range.clone()).bytes(), plain[range.clone()]);
    }
    assert!(kept_range(32, &first).is_none());
    let pieces: Vec<Bytes> = blob.pieces(64 << 10).collect();
    assert_eq!(pieces.concat(), plain);
    // A later digest of another view keeps that view's head instead.
    Blob::generated(33, 1000).digest_keeping_head();
    assert!(kept_range(31, &(0..10)).is_none());
    assert_eq!(
        kept_range(33, &(0..10)).as_deref(),
        Some(&generate_plainly(10, 33)[..])
    );
    // Let go once a codec has read it: the view's bytes are made again.
    crate::codec::Codec::Lz4
        .compress_blob_within(&Blob::generated(33, 1000), usize::MAX)
        .unwrap();
    assert!(kept_range(33, &(0..10)).is_none());
    Blob::generated(34, 1000).digest_keeping_head();
    crate::codec::Codec::Zstd.compress_blob(&Blob::generated(34, 1000));
    assert!(kept_range(34, &(0..10)).is_none());
    assert_eq!(
        Blob::generated(33, 1000).slice(0..10).bytes(),
        generate_plainly(10, 33)[..]
    );
}
