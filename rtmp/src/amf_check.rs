//! A non-recursive AMF0 scan run before rml_rtmp parses command and data messages. rml_amf0
//! parses recursively (deep nesting would exhaust the stack) and rml_rtmp indexes the first
//! three values of a command without checking they exist; this scan refuses both shapes.

/// Deeper nesting than any encoder sends (OBS and ffmpeg nest at most two levels).
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmfError {
    #[error("AMF0 values are nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("an AMF0 value is truncated or has an unknown type")]
    Malformed,
    #[error("an AMF0 command has fewer than three values (name, transaction id, object)")]
    ShortCommand,
}

enum Container {
    Object,
    Array { left: u32 },
}

/// Checks `data` (a sequence of AMF0 values); a command must hold at least three.
pub fn check_amf0(data: &[u8], is_command: bool) -> Result<(), AmfError> {
    let mut at = 0usize;
    let mut stack: Vec<Container> = Vec::new();
    let mut top_level_values = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<&[u8], AmfError> {
        let end = at.checked_add(n).ok_or(AmfError::Malformed)?;
        let bytes = data.get(*at..end).ok_or(AmfError::Malformed)?;
        *at = end;
        Ok(bytes)
    };
    loop {
        // Where the next value comes from: an object property, an array slot, the top level.
        match stack.last_mut() {
            Some(Container::Object) => {
                let len = take(&mut at, 2)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                if len == 0 {
                    if take(&mut at, 1)? != [0x09] {
                        return Err(AmfError::Malformed);
                    }
                    stack.pop();
                    if stack.is_empty() {
                        top_level_values += 1;
                    }
                    continue;
                }
                take(&mut at, len)?;
            }
            Some(Container::Array { left }) => {
                if *left == 0 || at >= data.len() {
                    stack.pop();
                    if stack.is_empty() {
                        top_level_values += 1;
                    }
                    continue;
                }
                *left -= 1;
            }
            None => {
                if at >= data.len() {
                    break;
                }
            }
        }
        let marker = take(&mut at, 1)?[0];
        let container = match marker {
            0x00 => {
                take(&mut at, 8)?;
                None
            }
            0x01 => {
                take(&mut at, 1)?;
                None
            }
            0x02 => {
                let len = take(&mut at, 2)?;
                take(&mut at, usize::from(u16::from_be_bytes([len[0], len[1]])))?;
                None
            }
            0x03 => Some(Container::Object),
            0x05 | 0x06 => None,
            0x08 => {
                take(&mut at, 4)?;
                Some(Container::Object)
            }
            0x0a => {
                let n = take(&mut at, 4)?;
                Some(Container::Array {
                    left: u32::from_be_bytes([n[0], n[1], n[2], n[3]]),
                })
            }
            _ => return Err(AmfError::Malformed),
        };
        match container {
            Some(c) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(AmfError::TooDeep);
                }
                stack.push(c);
            }
            None if stack.is_empty() => top_level_values += 1,
            None => {}
        }
    }
    if is_command && top_level_values < 3 {
        return Err(AmfError::ShortCommand);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on broken expectations.
mod tests {
    use super::*;

    fn string(s: &str) -> Vec<u8> {
        let mut v = vec![0x02];
        v.extend_from_slice(&(s.len() as u16).to_be_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn a_connect_command_passes() {
        let mut cmd = string("connect");
        cmd.extend([0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        cmd.push(0x03);
        cmd.extend([0, 3]);
        cmd.extend(b"app");
        cmd.extend(string("live"));
        cmd.extend([0, 4]);
        cmd.extend(b"list");
        cmd.extend([0x0a, 0, 0, 0, 2, 0x05, 0x01, 1]);
        cmd.extend([0, 0, 0x09]);
        assert_eq!(check_amf0(&cmd, true), Ok(()));
        assert_eq!(
            check_amf0(&cmd[..cmd.len() - 1], true),
            Err(AmfError::Malformed)
        );
    }

    #[test]
    fn short_commands_and_deep_nesting_are_refused() {
        let mut two = string("connect");
        two.push(0x05);
        assert_eq!(check_amf0(&two, true), Err(AmfError::ShortCommand));
        assert_eq!(check_amf0(&two, false), Ok(()));
        let deep: Vec<u8> = std::iter::repeat_n([0x0a, 0, 0, 0, 1], 1000)
            .flatten()
            .collect();
        assert_eq!(check_amf0(&deep, false), Err(AmfError::TooDeep));
        let mut objects = Vec::new();
        for _ in 0..MAX_DEPTH + 1 {
            objects.extend([0x03, 0, 1, b'a']);
        }
        assert_eq!(check_amf0(&objects, false), Err(AmfError::TooDeep));
        assert_eq!(check_amf0(&[0x0c, 0, 0], false), Err(AmfError::Malformed));
    }
}
