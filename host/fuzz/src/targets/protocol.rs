//! Target `protocol`: the payload of a "PBUF" frame, decoded as the host
//! decodes every guest message (`guest_protocol::decode`). Garbage must be
//! an error; what decodes must survive the guest's encoder unchanged,
//! since both sides run this same generated code.

use guest_protocol::{GuestMessage, MAX_ENCODED};

/// Room for any re-encoding: a decoded message is within the fixed
/// capacities, but its canonical encoding may be longer than the input's
/// (packed fields unpacked, defaults written out).
const ROOM: usize = 8 * MAX_ENCODED;

pub fn protocol(data: &[u8]) {
    let Ok(msg) = guest_protocol::decode(data) else {
        return;
    };
    // The host logs and reports messages through Debug and its fields.
    let _ = format!("{msg:?}");
    let mut buf = Box::new(heapless::Vec::<u8, ROOM>::new());
    let n = guest_protocol::encode(&msg, &mut buf).expect("a decoded message encodes");
    let again: GuestMessage = guest_protocol::decode(&buf[..n]).expect("its encoding decodes");
    assert_eq!(again, msg, "decode(encode(m)) == m");
}
