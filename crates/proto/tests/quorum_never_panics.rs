//! Decoding arbitrary bytes with the quorum codecs never panics, and every decoded value
//! re-encodes to the bytes it came from.

use corral_proto::quorum::*;
use corral_proto::Record;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn election_header_and_frame(b in bytes(64)) {
        if let Ok(Some((h, n))) = ElectionHeader::decode(&b) {
            prop_assert_eq!(&h.to_bytes()[..], &b[..n]);
        }
        let _ = check_election_frame(&b);
    }

    #[test]
    fn notification_decode(b in bytes(96)) {
        if let Ok(n) = Notification::decode(&b) {
            prop_assert_eq!(&n.to_bytes()[..], &b[..]);
        }
    }

    #[test]
    fn notification_with_plausible_prefix(
        state in 0i32..5, len in 26usize..64, version in -1i32..4, config_len in -2i32..40,
        tail in bytes(48),
    ) {
        let mut b = Vec::new();
        b.extend_from_slice(&state.to_be_bytes());
        b.extend_from_slice(&[0u8; 32]);
        b.extend_from_slice(&version.to_be_bytes());
        b.extend_from_slice(&config_len.to_be_bytes());
        b.extend_from_slice(&tail);
        b.truncate(len);
        if let Ok(n) = Notification::decode(&b) {
            prop_assert_eq!(&n.to_bytes()[..], &b[..]);
        }
    }

    #[test]
    fn quorum_packet_decode(b in bytes(128), max in 0usize..64) {
        if let Ok(Some((p, n))) = QuorumPacket::decode(&b, max) {
            prop_assert!(n <= b.len());
            prop_assert_eq!(&p.to_bytes()[..], &b[..n]);
        }
    }

    #[test]
    fn quorum_packet_with_plausible_prefix(
        t in 0i32..21, data_len in -2i32..20, count in -2i32..4, tail in bytes(80),
    ) {
        let mut b = Vec::new();
        b.extend_from_slice(&t.to_be_bytes());
        b.extend_from_slice(&7i64.to_be_bytes());
        b.extend_from_slice(&data_len.to_be_bytes());
        b.extend_from_slice(&[1u8; 20][..data_len.clamp(0, 20) as usize]);
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(&tail);
        if let Ok(Some((p, n))) = QuorumPacket::decode(&b, QUORUM_BUFFER_BYTES_MAX_DEFAULT) {
            prop_assert_eq!(&p.to_bytes()[..], &b[..n]);
        }
    }

    #[test]
    fn typed_payloads(b in bytes(40)) {
        let _ = LearnerInfo::decode(&b);
        if let Ok(v) = LeaderInfo::decode(&b) { prop_assert_eq!(&v.to_bytes()[..], &b[..]); }
        if let Ok(v) = AckEpoch::decode(&b) { prop_assert_eq!(&v.to_bytes()[..], &b[..]); }
        if let Ok(v) = LearnerRequest::decode(&b) { prop_assert_eq!(&v.to_bytes()[..], &b[..]); }
        if let Ok(v) = decode_ping_touches(&b) { prop_assert_eq!(&encode_ping_touches(&v)[..], &b[..]); }
        if let Ok(v) = RevalidateRequest::decode(&b) { prop_assert_eq!(&v.to_bytes()[..], &b[..]); }
        let _ = RevalidateReply::decode(&b);
        if let Ok(v) = Activate::decode(&b) { prop_assert_eq!(&v.to_bytes()[..], &b[..]); }
    }
}
