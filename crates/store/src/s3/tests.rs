use super::*;

#[test]
fn s3_xml_is_parsed_with_escapes_and_interleaved_markers() {
    let x = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><IsTruncated>true</IsTruncated>
  <NextKeyMarker>k&amp;2</NextKeyMarker><NextVersionIdMarker>v9</NextVersionIdMarker>
  <Version><Key>a&amp;b</Key><VersionId>1</VersionId><IsLatest>false</IsLatest>
<LastModified>2026-01-01T00:00:00.000Z</LastModified><Size>3</Size></Version>
  <DeleteMarker><Key>a&amp;b</Key><VersionId>2</VersionId><IsLatest>true</IsLatest>
<LastModified>2026-01-02T00:00:00.000Z</LastModified></DeleteMarker>
  <Version><Key>c</Key><VersionId>3</VersionId><Size>4</Size>
<LastModified>2026-01-01T00:00:00.000Z</LastModified></Version>
</ListVersionsResult>"#;
    let page: ListVersionsResult = quick_xml::de::from_str(x).unwrap();
    assert!(page.is_truncated);
    assert_eq!(page.next_key_marker.as_deref(), Some("k&2"));
    let keys: Vec<&str> = page.version.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["a&b", "c"]);
    assert_eq!(page.delete_marker[0].version_id, "2");
    let lock: ObjectLockConfiguration = quick_xml::de::from_str(
        "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>",
    )
    .unwrap();
    assert_eq!(lock.object_lock_enabled.as_deref(), Some("Enabled"));
    assert_eq!(
        lock.rule
            .unwrap()
            .default_retention
            .unwrap()
            .mode
            .as_deref(),
        Some("COMPLIANCE")
    );
    let (kind, e) = http_failed(
        reqwest::StatusCode::NOT_FOUND,
        "<Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>",
    );
    assert_eq!(kind, BackendKind::Misconfigured);
    assert_eq!(e.to_string(), "HTTP 404 Not Found: NoSuchBucket gone");
    assert_eq!(percent("a/b c"), "a%2Fb%20c");
}
