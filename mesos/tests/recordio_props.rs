//! Property tests for the RecordIO codec.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use mesos_v1::recordio::{self, RecordIoCodec, RecordIoError};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

/// Splits `data` at the given (sorted, deduplicated) cut points.
fn chunk(data: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points {
        out.push(Bytes::copy_from_slice(&data[start..p]));
        start = p;
    }
    out.push(Bytes::copy_from_slice(&data[start..]));
    out
}

proptest! {
    #[test]
    fn encode_chunk_decode_is_identity(
        records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let mut wire = BytesMut::new();
        for r in &records {
            recordio::encode_into(r, &mut wire);
        }
        let mut codec = RecordIoCodec::new(1024);
        let mut buf = BytesMut::new();
        let mut out: Vec<Vec<u8>> = Vec::new();
        for c in chunk(&wire, &cuts) {
            buf.extend_from_slice(&c);
            while let Some(r) = codec.decode(&mut buf).expect("valid input decodes") {
                out.push(r.to_vec());
            }
        }
        prop_assert!(codec.decode_eof(&mut buf).expect("clean end").is_none());
        prop_assert_eq!(out, records);
    }

    #[test]
    fn stream_adapter_matches(
        records in proptest::collection::vec("[ -~]{0,100}", 0..10),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut wire = BytesMut::new();
        for r in &records {
            recordio::encode_into(r.as_bytes(), &mut wire);
        }
        let chunks: Vec<Result<Bytes, std::io::Error>> = chunk(&wire, &cuts).into_iter().map(Ok).collect();
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let got: Vec<String> = rt.block_on(async {
            recordio::decode_stream(futures::stream::iter(chunks), 1024)
                .map(|r| String::from_utf8(r.expect("record").to_vec()).expect("utf8"))
                .collect()
                .await
        });
        prop_assert_eq!(got, records);
    }

    #[test]
    fn garbage_never_panics(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        max in 0usize..4096,
    ) {
        let mut codec = RecordIoCodec::new(max);
        let mut buf = BytesMut::new();
        let mut total = 0usize;
        'outer: for c in chunk(&data, &cuts) {
            buf.extend_from_slice(&c);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(r)) => {
                        prop_assert!(r.len() <= max);
                        total += r.len();
                    }
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
        prop_assert!(total <= data.len());
        // EOF handling must not panic either.
        let _ = codec.decode_eof(&mut buf);
    }

    #[test]
    fn oversized_records_are_refused(size in 11u64..u64::MAX) {
        let mut codec = RecordIoCodec::new(10);
        let mut buf = BytesMut::from(format!("{size}\n").as_bytes());
        let refused = matches!(codec.decode(&mut buf), Err(RecordIoError::RecordTooLarge { .. }));
        prop_assert!(refused);
    }
}
