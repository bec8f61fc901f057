use super::*;

#[tokio::test]
async fn create_is_exclusive_idempotent_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path().to_str().unwrap(), false).unwrap();
    let c = s
        .create("a/b/x.bin", Bytes::from_static(b"one"))
        .await
        .unwrap();
    assert!(!c.already_existed);
    let again = s
        .create("a/b/x.bin", Bytes::from_static(b"one"))
        .await
        .unwrap();
    assert!(again.already_existed);
    let e = s
        .create("a/b/x.bin", Bytes::from_static(b"two"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
    assert_eq!(&s.get("a/b/x.bin").await.unwrap()[..], b"one");
    let meta = std::fs::metadata(dir.path().join("a/b/x.bin")).unwrap();
    assert!(meta.permissions().readonly());
    let listed = s.list("a/").await.unwrap();
    assert_eq!(
        listed,
        vec![ObjectInfo {
            name: "a/b/x.bin".into(),
            size: 3,
            kind: EntryKind::Regular,
        }]
    );
    assert!(matches!(
        s.get("a/nope").await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert!(matches!(
        s.create("../escape", Bytes::new()).await.unwrap_err(),
        StoreError::InvalidName(_)
    ));
}

/// Issue 7: a write-once vault never contains links; the store neither follows one to read
/// or write nor hides one from a listing.
#[tokio::test]
async fn links_and_special_files_are_listed_as_such_and_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("d")).unwrap();
    std::fs::write(outside.path().join("d/x.bin"), b"forged").unwrap();
    std::fs::write(outside.path().join("f.bin"), b"forged").unwrap();
    let s = LocalStore::open(dir.path().to_str().unwrap(), false).unwrap();
    s.create("real/x.bin", Bytes::from_static(b"sealed"))
        .await
        .unwrap();
    let root = dir.path();
    std::os::unix::fs::symlink(outside.path().join("d"), root.join("linkdir")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("f.bin"), root.join("real/link.bin")).unwrap();
    rustix::fs::mknodat(
        CWD,
        root.join("real/fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    std::fs::write(root.join("real/.x.bin.tmp-1-2"), b"partial").unwrap();

    let names: Vec<(String, EntryKind)> = s
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.name, o.kind))
        .collect();
    assert_eq!(
        names,
        vec![
            ("linkdir".to_string(), EntryKind::Symlink),
            ("real/.x.bin.tmp-1-2".to_string(), EntryKind::Regular),
            ("real/fifo".to_string(), EntryKind::Special),
            ("real/link.bin".to_string(), EntryKind::Symlink),
            ("real/x.bin".to_string(), EntryKind::Regular),
        ]
    );
    for name in ["linkdir/x.bin", "real/link.bin", "real/fifo"] {
        let e = s.get(name).await.unwrap_err();
        assert!(matches!(e, StoreError::NotRegular { .. }), "{name}: {e}");
    }
    let e = s
        .create("linkdir/new.bin", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotRegular { .. }), "{e}");
    assert!(!outside.path().join("d/new.bin").exists());
    let e = s.list("linkdir/").await.unwrap_err();
    assert!(matches!(e, StoreError::NotRegular { .. }), "{e}");
    // The root itself may be a link, resolved once.
    let alias = outside.path().join("alias");
    std::os::unix::fs::symlink(root, &alias).unwrap();
    let via = LocalStore::open(alias.to_str().unwrap(), true).unwrap();
    assert_eq!(&via.get("real/x.bin").await.unwrap()[..], b"sealed");
}
