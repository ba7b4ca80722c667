//! Fuzzes every decoder of the device wire format: uplink framing, signed readings (envelope,
//! body, canonical-encoding check) and acks. None may panic, and whatever decodes must
//! re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::limits::ACK_BYTES_MAX;
use protocol::{Ack, SignedReading, Uplink};

fuzz_target!(|data: &[u8]| {
    if let Ok(uplink) = Uplink::decode(data) {
        assert_eq!(uplink.readings().count(), uplink.len());
        for bytes in uplink.readings() {
            if let Ok(signed) = SignedReading::decode(bytes) {
                assert_eq!(signed.as_bytes(), bytes);
            }
        }
    }
    if let Ok(signed) = SignedReading::decode(data) {
        assert_eq!(signed.as_bytes(), data);
    }
    if let Ok(ack) = Ack::decode(data) {
        let _ = ack.covered();
        for range in ack.ranges() {
            assert!(ack.contains(protocol::SequenceNumber(range.first)));
        }
        let mut buf = [0u8; ACK_BYTES_MAX];
        assert_eq!(ack.encode(&mut buf).ok(), Some(data));
    }
});
