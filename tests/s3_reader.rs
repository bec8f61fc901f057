//! A StoreReader on S3 (moto with Object Lock): range reads pinned to a version and a single
//! segment checked alone. One test in its own binary: it sets the process's AWS environment.

use cairn_tests::*;

#[test]
fn range_reads_and_single_segment_checks_on_s3() {
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let keys = keygen(tmp.path());
    s3.admin(&[
        "create-bucket",
        "audit",
        "--lock",
        "--default-retention-days",
        "1",
    ]);
    let input = data("sample.jsonl");
    let (code, out, err) = s3.cairn(&[
        "seal",
        "--input",
        input.to_str().unwrap(),
        "--source-id",
        "billing",
        "--store",
        "s3://audit/t",
        "--key",
        &keys.key,
        "--segment-events",
        "10",
        "--rejects",
        "/dev/null",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for (k, v) in s3.env() {
        // SAFETY: the only test in this binary; nothing else reads the environment yet.
        unsafe { std::env::set_var(k, v) };
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reader = rt
        .block_on(cairn_store::StoreReader::open("s3://audit/t"))
        .unwrap();
    let listed = rt.block_on(reader.list("v1/")).unwrap();
    let parquet = listed
        .iter()
        .find(|o| o.name.ends_with(".parquet"))
        .unwrap();
    let versions = rt
        .block_on(reader.versions(&parquet.name))
        .unwrap()
        .unwrap();
    let version = versions[0].version_id.clone();
    let tail = rt
        .block_on(reader.get_range(
            &parquet.name,
            Some(&version),
            parquet.size - 4..parquet.size,
        ))
        .unwrap();
    assert_eq!(&tail[..], b"PAR1");

    let key = cairn_format::PublicKey::parse(
        &std::fs::read_to_string(&keys.public).unwrap(),
        &keys.public,
    )
    .unwrap();
    let manifest = parquet.name.replace(".parquet", ".manifest");
    let v = rt
        .block_on(cairn_verify::check_segment(&reader, &[key], &manifest))
        .unwrap();
    assert!(v.is_intact(), "{:#?}", v.findings);
    assert_eq!(
        v.manifest.unwrap().manifest.parquet.version_id,
        Some(version),
        "the manifest pins the version that was read"
    );
}
