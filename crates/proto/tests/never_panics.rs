//! Decoding arbitrary bytes never panics and never over-allocates.

use corral_proto::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn request_decode_never_panics(op in -12i32..110, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Request::decode(op, &mut Reader::from_slice(&body));
    }

    #[test]
    fn multi_decode_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Request::decode(OpCode::Multi.code(), &mut Reader::from_slice(&body));
        let _ = Request::decode(OpCode::MultiRead.code(), &mut Reader::from_slice(&body));
    }

    #[test]
    fn txn_and_response_decode_never_panic(op in -12i32..110, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Txn::decode(op, &mut Reader::from_slice(&body));
        let _ = TxnEntry::decode(&mut Reader::from_slice(&body));
        let _ = ConnectRequest::from_bytes(bytes::Bytes::from(body.clone()));
        if let Some(code) = OpCode::from_i32(op) {
            let _ = Response::decode(code, &mut Reader::from_slice(&body));
        }
    }

    #[test]
    fn huge_counts_are_rejected_not_allocated(count in 1i32..i32::MAX) {
        let mut b = vec![0u8; 8];
        b.extend_from_slice(&count.to_be_bytes());
        let _ = Txn::decode(OpCode::Multi.code(), &mut Reader::from_slice(&b[8..]));
    }
}
