use super::*;
use proptest::prelude::*;

/// The leaves of the RFC 6962 reference test tree (certificate-transparency merkle_tree_test).
fn ct_leaves() -> Vec<Vec<u8>> {
    vec![
        vec![],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x21],
        vec![0x30, 0x31],
        vec![0x40, 0x41, 0x42, 0x43],
        vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        (0x60..=0x6f).collect(),
    ]
}

fn h(s: &str) -> Hash {
    Hash(hex::decode(s).unwrap().try_into().unwrap())
}

fn build(leaves: &[Vec<u8>]) -> (Frontier, MapHashReader, Vec<Hash>) {
    let mut f = Frontier::new();
    let mut map = MapHashReader::default();
    let mut roots = Vec::new();
    for l in leaves {
        for (i, hash) in f.push(record_hash(l)) {
            map.0.insert(i, hash);
        }
        roots.push(f.root());
    }
    (f, map, roots)
}

#[test]
fn rfc6962_roots() {
    let expected = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let (_, _, roots) = build(&ct_leaves());
    for (i, e) in expected.iter().enumerate() {
        assert_eq!(roots[i], h(e), "root of tree size {}", i + 1);
    }
    assert_eq!(
        Frontier::new().root(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
}

#[test]
fn rfc6962_inclusion_proof_vectors() {
    let (f, map, _) = build(&ct_leaves());
    let proof = prove_inclusion(8, 0, &map).unwrap();
    assert_eq!(
        proof,
        vec![
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ]
    );
    check_record(&proof, 8, f.root(), 0, record_hash(&[])).unwrap();
}

#[test]
fn rfc6962_consistency_proof_vectors() {
    let (_, map, roots) = build(&ct_leaves());
    let p = prove_consistency(8, 6, &map).unwrap();
    assert_eq!(
        p,
        vec![
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ]
    );
    check_tree(&p, 8, roots[7], 6, roots[5]).unwrap();
    let p = prove_consistency(5, 2, &map).unwrap();
    assert_eq!(
        p,
        vec![
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ]
    );
}

#[test]
fn frontier_rebuilds_from_stored_hashes() {
    let leaves: Vec<Vec<u8>> = (0u32..1000).map(|i| i.to_be_bytes().to_vec()).collect();
    let (f, map, _) = build(&leaves);
    for size in [1u64, 2, 3, 255, 256, 257, 999, 1000] {
        let (prefix, _, _) = build(&leaves[..size as usize]);
        let idx = Frontier::indexes_for(size);
        let hashes: Vec<Hash> = idx.iter().map(|i| map.0[i]).collect();
        assert_eq!(Frontier::from_hashes(size, &hashes).unwrap(), prefix);
    }
    assert_eq!(f.size(), 1000);
    assert_eq!(stored_hash_count(1000) as usize, map.0.len());
}

#[test]
fn checkpoint_sign_and_verify() {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let party: PartyCode = "NL".parse().unwrap();
    let origin = origin_for(&party, &key.verifying_key());
    assert!(origin.starts_with("entente/NL/"));
    let signer = LogSigner::new(&origin, &key);
    let root = record_hash(b"x");
    let note = signer.sign_checkpoint(42, root).unwrap();
    let text = String::from_utf8(note.clone()).unwrap();
    assert!(text.starts_with(&format!("{origin}\n42\n")), "{text}");
    assert!(text.contains("\n\n\u{2014} "), "{text}");
    let vkey = verifier_key(&origin, &key.verifying_key());
    let cp = verify_checkpoint(&note, &vkey).unwrap();
    assert_eq!((cp.size, cp.root), (42, root));

    // Another key does not verify it.
    let other = SigningKey::from_bytes(&[8u8; 32]);
    let other_vkey = verifier_key(&origin, &other.verifying_key());
    assert!(verify_checkpoint(&note, &other_vkey).is_err());
}

#[test]
fn checkpoint_tamper_is_detected_at_every_byte() {
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let origin = "entente/DE/00000000";
    let note = LogSigner::new(origin, &key).sign_checkpoint(3, record_hash(b"y")).unwrap();
    let vkey = verifier_key(origin, &key.verifying_key());
    for i in 0..note.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = note.clone();
            bad[i] ^= bit;
            if let Ok(cp) = verify_checkpoint(&bad, &vkey) {
                panic!("flipped byte {i} accepted: {cp:?}");
            }
        }
    }
}

#[test]
fn entry_bundles_round_trip_and_reject_truncation() {
    let entries: Vec<&[u8]> = vec![b"a", b"", b"hello"];
    let b = encode_entry_bundle(entries.clone()).unwrap();
    assert_eq!(decode_entry_bundle(&b).unwrap(), entries);
    assert!(decode_entry_bundle(&b[..b.len() - 1]).is_err());
    assert!(decode_entry_bundle(&[0]).is_err());
    assert!(encode_entry_bundle([vec![0u8; 70_000].as_slice()]).is_err());
}

#[test]
fn tile_paths_follow_c2sp() {
    assert_eq!(tile_path(0, 0, 256), "tile/0/000");
    assert_eq!(tile_path(0, 1234067, 256), "tile/0/x001/x234/067");
    assert_eq!(tile_path(1, 5, 7), "tile/1/005.p/7");
    assert_eq!(entries_path(0, 3), "tile/entries/000.p/3");
    assert_eq!(
        parse_tile_path("0/x001/x234/067").unwrap(),
        TileRef::Hashes { level: 0, index: 1234067, width: 256 }
    );
    assert_eq!(
        parse_tile_path("1/005.p/7").unwrap(),
        TileRef::Hashes { level: 1, index: 5, width: 7 }
    );
    assert_eq!(
        parse_tile_path("entries/000.p/3").unwrap(),
        TileRef::Entries { index: 0, width: 3 }
    );
    for bad in [
        "",
        "0",
        "0/1",
        "0/0000",
        "0/x000/001",
        "0/001.p/0",
        "0/001.p/256",
        "0/001.p/07",
        "a/000",
        "entries/01",
        "9/000",
        "0/x1/000",
    ] {
        assert!(parse_tile_path(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn tile_widths() {
    assert_eq!(tile_width_in_tree(0, 0, 10), 10);
    assert_eq!(tile_width_in_tree(0, 0, 300), 256);
    assert_eq!(tile_width_in_tree(0, 1, 300), 44);
    assert_eq!(tile_width_in_tree(1, 0, 300), 1);
    assert_eq!(tile_width_in_tree(1, 0, 255), 0);
}

fn sample_entry(index: u64) -> LedgerEntry {
    LedgerEntry {
        v: ENTRY_FORMAT,
        index,
        time: "2026-03-28T05:15:00.000000Z".into(),
        node: "NL".parse().unwrap(),
        actor: Actor::User { name: "eva".into(), role: crate::Role::Investigator },
        action: Action::CaseOpen,
        subjects: vec![Subject::new(crate::SubjectKind::Case, "LANTERN")],
        decision: Outcome::Permit,
        rules: vec!["role.case-worker.case-open".into()],
        obligations: vec![],
        reason: "role investigator may case.open".into(),
        payload_hashes: BTreeMap::from([("case".into(), crate::canonical::sha256_tagged(b"x"))]),
        unverified_basis: vec![],
    }
}

#[test]
fn entries_are_canonical() {
    let e = sample_entry(5);
    let bytes = e.encode().unwrap();
    assert_eq!(LedgerEntry::decode(&bytes).unwrap(), e);
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with(
            r#"{"action":"case.open","actor":{"kind":"user","name":"eva","role":"investigator"}"#
        ),
        "{text}"
    );
    // Same content with whitespace: parses, but is refused as non-canonical.
    let spaced = text.replace(",\"index\"", ", \"index\"");
    assert!(matches!(LedgerEntry::decode(spaced.as_bytes()), Err(EntryError::NotCanonical)));
    let unknown = text.replacen('{', r#"{"extra":1,"#, 1);
    assert!(matches!(LedgerEntry::decode(unknown.as_bytes()), Err(EntryError::Malformed(_))));
}

proptest! {
    /// For any tree size and any leaf, the inclusion proof verifies; for any two sizes the
    /// consistency proof verifies; a flipped bit in the leaf, the proof or the root fails.
    #[test]
    fn every_proof_verifies_and_tampering_fails(
        size in 1u64..600,
        leaf_sel in any::<u64>(),
        old_sel in any::<u64>(),
        flip in any::<(u8, u8)>(),
    ) {
        let leaves: Vec<Vec<u8>> = (0..size).map(|i| format!("entry {i}").into_bytes()).collect();
        let (f, map, roots) = build(&leaves);
        let root = f.root();
        let n = leaf_sel % size;
        let proof = prove_inclusion(size, n, &map).unwrap();
        let needed = inclusion_proof_indexes(size, n).unwrap();
        prop_assert!(needed.iter().all(|i| map.0.contains_key(i)));
        check_record(&proof, size, root, n, record_hash(&leaves[n as usize])).unwrap();

        let mut bad_leaf = leaves[n as usize].clone();
        bad_leaf.push(flip.0);
        prop_assert!(check_record(&proof, size, root, n, record_hash(&bad_leaf)).is_err());
        let mut bad_root = root;
        bad_root.0[usize::from(flip.0) % 32] ^= 1 << (flip.1 % 8);
        prop_assert!(check_record(&proof, size, bad_root, n, record_hash(&leaves[n as usize])).is_err());
        if !proof.is_empty() {
            let mut bad_proof = proof.clone();
            let k = usize::from(flip.0) % bad_proof.len();
            bad_proof[k].0[usize::from(flip.1) % 32] ^= 1;
            prop_assert!(check_record(&bad_proof, size, root, n, record_hash(&leaves[n as usize])).is_err());
        }

        let old = 1 + old_sel % size;
        let cproof = prove_consistency(size, old, &map).unwrap();
        check_tree(&cproof, size, root, old, roots[(old - 1) as usize]).unwrap();
        if old < size {
            prop_assert!(check_tree(&cproof, size, root, old, roots[old as usize]).is_err());
        }
    }

    /// Decoding never panics on arbitrary bytes.
    #[test]
    fn decode_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = LedgerEntry::decode(&bytes);
        let _ = decode_entry_bundle(&bytes);
        let _ = parse_tile_path(&String::from_utf8_lossy(&bytes));
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let vkey = verifier_key("entente/NL/00000000", &key.verifying_key());
        prop_assert!(verify_checkpoint(&bytes, &vkey).is_err());
    }

    /// Cutting or duplicating any line of a signed checkpoint never makes it vouch for
    /// something else: it is refused, or (a repeated identical signature line, which
    /// signed-note verifiers ignore, as Go's `note` package does) it states the same tree.
    #[test]
    fn checkpoint_line_edits_are_refused(cut in 0usize..6, dup in any::<bool>()) {
        let key = SigningKey::from_bytes(&[4u8; 32]);
        let origin = "entente/US/00000000";
        let note = LogSigner::new(origin, &key).sign_checkpoint(9, record_hash(b"z")).unwrap();
        let vkey = verifier_key(origin, &key.verifying_key());
        let text = String::from_utf8(note).unwrap();
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        let k = cut % lines.len();
        if dup { let l = lines[k]; lines.insert(k, l); } else { lines.remove(k); }
        let edited: String = lines.concat();
        if let Ok(cp) = verify_checkpoint(edited.as_bytes(), &vkey) {
            prop_assert_eq!((cp.size, cp.root), (9, record_hash(b"z")));
            let repeated_signature = dup && lines[k].starts_with('\u{2014}');
            prop_assert!(repeated_signature);
        }
    }
}
