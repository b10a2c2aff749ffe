//! The frames of a node link, one per binary WebSocket message: a kind byte, the virtual
//! connection's id (8 bytes, big-endian), then the kind's payload. Decoding never panics:
//! a frame from the network that does not parse is an error the link reports and ends on.
//! A node frame's payload (node-to-node commands, [`super::node`]) is checked by its reader,
//! which drops what it cannot read and goes on.

/// A participant's virtual connection on one link, numbered by the edge that opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One frame of a node link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkFrame {
    /// Edge to home: a participant's connection opens (its `join` follows as text).
    Open(ConnId),
    /// A signaling message of the connection, verbatim.
    Text(ConnId, String),
    /// The connection closes with this WebSocket close code and reason.
    Close {
        conn: ConnId,
        code: u16,
        reason: String,
    },
    /// The receiver took `n` more of the connection's text frames: the sender may send `n`
    /// more (each direction of each connection has a window of text frames in flight).
    Credit(ConnId, u32),
    /// A message between the two nodes themselves, no connection's ([`super::node`]): its
    /// bytes, whose version and form the reader checks. The id field is 0.
    Node(Vec<u8>),
}

const OPEN: u8 = 1;
const TEXT: u8 = 2;
const CLOSE: u8 = 3;
const CREDIT: u8 = 4;
const NODE: u8 = 5;
const HEADER: usize = 9;

/// Why bytes from the other node are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame shorter than its header")]
    Short,
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("a text or close reason that is not UTF-8")]
    NotUtf8,
    #[error("a frame of kind {0} with a payload of the wrong size")]
    BadPayload(u8),
}

impl LinkFrame {
    pub fn conn(&self) -> ConnId {
        match self {
            LinkFrame::Open(conn)
            | LinkFrame::Text(conn, _)
            | LinkFrame::Close { conn, .. }
            | LinkFrame::Credit(conn, _) => *conn,
            LinkFrame::Node(_) => ConnId(0),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload_len) = match self {
            LinkFrame::Open(_) => (OPEN, 0),
            LinkFrame::Text(_, text) => (TEXT, text.len()),
            LinkFrame::Close { reason, .. } => (CLOSE, 2 + reason.len()),
            LinkFrame::Credit(..) => (CREDIT, 4),
            LinkFrame::Node(bytes) => (NODE, bytes.len()),
        };
        let mut bytes = Vec::with_capacity(HEADER + payload_len);
        bytes.push(kind);
        bytes.extend_from_slice(&self.conn().0.to_be_bytes());
        match self {
            LinkFrame::Open(_) => {}
            LinkFrame::Text(_, text) => bytes.extend_from_slice(text.as_bytes()),
            LinkFrame::Close { code, reason, .. } => {
                bytes.extend_from_slice(&code.to_be_bytes());
                bytes.extend_from_slice(reason.as_bytes());
            }
            LinkFrame::Credit(_, n) => bytes.extend_from_slice(&n.to_be_bytes()),
            LinkFrame::Node(payload) => bytes.extend_from_slice(payload),
        }
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<LinkFrame, FrameError> {
        let (head, payload) = bytes.split_at_checked(HEADER).ok_or(FrameError::Short)?;
        let (&kind, id) = head.split_first().ok_or(FrameError::Short)?;
        let id: [u8; 8] = id.try_into().map_err(|_| FrameError::Short)?;
        let conn = ConnId(u64::from_be_bytes(id));
        let text = |bytes: &[u8]| {
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| FrameError::NotUtf8)
        };
        match kind {
            OPEN if payload.is_empty() => Ok(LinkFrame::Open(conn)),
            TEXT => Ok(LinkFrame::Text(conn, text(payload)?)),
            CLOSE => {
                let (code, reason) = payload
                    .split_at_checked(2)
                    .ok_or(FrameError::BadPayload(kind))?;
                let code = u16::from_be_bytes([code[0], code[1]]);
                Ok(LinkFrame::Close {
                    conn,
                    code,
                    reason: text(reason)?,
                })
            }
            CREDIT => {
                let n: [u8; 4] = payload
                    .try_into()
                    .map_err(|_| FrameError::BadPayload(kind))?;
                Ok(LinkFrame::Credit(conn, u32::from_be_bytes(n)))
            }
            NODE if conn == ConnId(0) => Ok(LinkFrame::Node(payload.to_vec())),
            OPEN | NODE => Err(FrameError::BadPayload(kind)),
            other => Err(FrameError::UnknownKind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_reads_back_as_written() {
        let frames = [
            LinkFrame::Open(ConnId(1)),
            LinkFrame::Text(
                ConnId(u64::MAX),
                r#"{"v":1,"type":"chat","text":"é"}"#.into(),
            ),
            LinkFrame::Text(ConnId(7), String::new()),
            LinkFrame::Close {
                conn: ConnId(3),
                code: 4003,
                reason: "removed".into(),
            },
            LinkFrame::Credit(ConnId(9), 32),
            LinkFrame::Node(b"\x01{}".to_vec()),
            LinkFrame::Node(Vec::new()),
        ];
        for frame in frames {
            assert_eq!(LinkFrame::decode(&frame.encode()), Ok(frame));
        }
    }

    #[test]
    fn bytes_that_are_not_a_frame_are_errors() {
        let open = LinkFrame::Open(ConnId(1)).encode();
        assert_eq!(LinkFrame::decode(&open[..8]), Err(FrameError::Short));
        assert_eq!(LinkFrame::decode(&[]), Err(FrameError::Short));
        let mut unknown = open.clone();
        unknown[0] = 99;
        assert_eq!(
            LinkFrame::decode(&unknown),
            Err(FrameError::UnknownKind(99))
        );
        let mut long_open = open;
        long_open.push(0);
        assert_eq!(
            LinkFrame::decode(&long_open),
            Err(FrameError::BadPayload(OPEN))
        );
        let mut text = LinkFrame::Text(ConnId(1), String::new()).encode();
        text.push(0xff);
        assert_eq!(LinkFrame::decode(&text), Err(FrameError::NotUtf8));
        let close = LinkFrame::Close {
            conn: ConnId(1),
            code: 1000,
            reason: String::new(),
        }
        .encode();
        assert_eq!(
            LinkFrame::decode(&close[..HEADER + 1]),
            Err(FrameError::BadPayload(CLOSE))
        );
        let credit = LinkFrame::Credit(ConnId(1), 1).encode();
        assert_eq!(
            LinkFrame::decode(&credit[..HEADER + 3]),
            Err(FrameError::BadPayload(CREDIT))
        );
        let mut node = LinkFrame::Node(vec![1]).encode();
        node[8] = 1;
        assert_eq!(
            LinkFrame::decode(&node),
            Err(FrameError::BadPayload(NODE)),
            "a node frame names no connection"
        );
    }
}
