//! The library API readers build on: one segment checked alone (cairn_verify::check_segment)
//! and range reads (StoreReader::get_range), on a local vault.

use cairn_tests::*;
use std::path::Path;

fn sealed() -> (tempfile::TempDir, Keys, std::path::PathBuf, Vec<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    let store = tmp.path().join("vault");
    seal(
        &data("sample.jsonl"),
        store.to_str().unwrap(),
        &keys.key,
        10,
        &tmp.path().join("r"),
    );
    let objs = objects(&store);
    (tmp, keys, store, objs)
}

fn public_key(path: &str) -> cairn_format::PublicKey {
    cairn_format::PublicKey::parse(&std::fs::read_to_string(path).unwrap(), path).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_single_segment_is_checked_alone() {
    let (_tmp, keys, store, objs) = sealed();
    let manifest = objs
        .iter()
        .find(|o| o.ends_with(".manifest"))
        .unwrap()
        .clone();
    let parquet = manifest.replace(".manifest", ".parquet");
    let key = public_key(&keys.public);
    let rt = runtime();
    let reader = rt
        .block_on(cairn_store::StoreReader::open(store.to_str().unwrap()))
        .unwrap();
    let check = |object: &str| {
        rt.block_on(cairn_verify::check_segment(
            &reader,
            std::slice::from_ref(&key),
            object,
        ))
    };

    let v = check(&manifest).unwrap();
    assert!(v.is_intact(), "{:#?}", v.findings);
    assert_eq!(v.events, 10);
    assert_eq!(v.manifest.unwrap().manifest.first_offset, 1);

    let e = check(&parquet).unwrap_err();
    assert!(e.to_string().contains("is not a manifest"), "{e}");

    let p = store.join(&parquet);
    make_writable(&p);
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&p, &bytes).unwrap();
    let v = check(&manifest).unwrap();
    assert!(!v.is_intact());
    let kinds: Vec<_> = v
        .findings
        .iter()
        .map(|f| (f.kind, f.object.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [(cairn_verify::FindingKind::ModifiedFile, parquet.as_str())]
    );

    // A link in the file's place is never followed, here either.
    std::fs::remove_file(&p).unwrap();
    std::os::unix::fs::symlink(Path::new("/etc/hostname"), &p).unwrap();
    let v = check(&manifest).unwrap();
    let kinds: Vec<_> = v.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [cairn_verify::FindingKind::NonRegularObject]);
}

#[test]
fn range_reads_return_parquet_footers() {
    let (_tmp, _keys, store, objs) = sealed();
    let parquet = objs.iter().find(|o| o.ends_with(".parquet")).unwrap();
    let size = std::fs::metadata(store.join(parquet)).unwrap().len();
    let rt = runtime();
    let reader = rt
        .block_on(cairn_store::StoreReader::open(store.to_str().unwrap()))
        .unwrap();
    let tail = rt
        .block_on(reader.get_range(parquet, None, size - 8..size))
        .unwrap();
    assert_eq!(&tail[4..], b"PAR1");
    let footer_len = u32::from_le_bytes(tail[..4].try_into().unwrap()) as u64;
    let footer = rt
        .block_on(reader.get_range(parquet, None, size - 8 - footer_len..size - 8))
        .unwrap();
    assert_eq!(footer.len() as u64, footer_len);
}
