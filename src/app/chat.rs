//! The chat route: every message goes to every member of the sender's room
//! (`/chat?room=NAME`), with welcome, join and leave announcements as JSON text.
//!
//! Owns room membership (through [`Rooms`]), presence and the announcement JSON.
//! It must never encode frames or touch a connection: it names recipients and
//! the server delivers, encoding each message once per encoding in use.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Serialize;

use crate::app::handler::{ConnKey, Effects, Opening, Peer, Relay, RouteHandler, Slot, Topic};
use crate::app::rooms::Rooms;
use crate::app::status::Census;
use crate::app::{query_param, Rejection};
use crate::config::{ChatConfig, RouteKind};
use crate::core::{Message, MessageKind, MessageRef};

/// The longest room name accepted from a query parameter.
pub const MAX_ROOM_NAME: usize = 128;

#[derive(Debug)]
pub struct Chat {
    /// Settings; a reload may replace them (rooms and members stay).
    config: RefCell<ChatConfig>,
    rooms: RefCell<Rooms>,
    /// The route's path: a room's backplane channel is `PATH:ROOM`.
    path: String,
    /// Whether rooms span processes through the backplane.
    relaying: bool,
    /// Members other processes announced, by room name and process.
    remote: RefCell<HashMap<String, HashMap<String, usize>>>,
}

/// A presence message, as JSON text: `{"type":"join","id":3,"members":2}`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Announcement<'a> {
    /// To the member who joined: who it is and who is there.
    Welcome {
        id: u64,
        room: &'a str,
        members: usize,
    },
    Join {
        id: u64,
        members: usize,
    },
    Leave {
        id: u64,
        members: usize,
    },
}

impl Announcement<'_> {
    fn message(&self) -> Message {
        Message {
            kind: MessageKind::Text,
            // Serializing a struct of numbers and strings to a Vec cannot fail.
            data: serde_json::to_vec(self).unwrap_or_default(),
        }
    }
}

/// What one process relays to the others about a room: the first byte says
/// what, the rest is the message or `ID COUNT` (a member's id and how many
/// members the sender has in the room now).
const RELAY_TEXT: u8 = b't';
const RELAY_BINARY: u8 = b'b';
const RELAY_JOIN: u8 = b'j';
const RELAY_LEAVE: u8 = b'l';
/// A process's member count, sent in answer to a join from a process it had
/// not heard of, so a newcomer learns the room's size.
const RELAY_COUNT: u8 = b'c';

/// A message as relayed: its kind, then its bytes.
fn relayed_message(message: MessageRef<'_>) -> Vec<u8> {
    let what = match message.kind {
        MessageKind::Text => RELAY_TEXT,
        MessageKind::Binary => RELAY_BINARY,
    };
    let mut payload = Vec::with_capacity(message.data.len() + 1);
    payload.push(what);
    payload.extend_from_slice(message.data);
    payload
}

fn presence(what: u8, id: u64, count: usize) -> Vec<u8> {
    let mut out = vec![what];
    out.extend_from_slice(format!("{id} {count}").as_bytes());
    out
}

fn parse_presence(body: &[u8]) -> Option<(u64, usize)> {
    let text = std::str::from_utf8(body).ok()?;
    let (id, count) = text.split_once(' ')?;
    Some((id.parse().ok()?, count.parse().ok()?))
}

impl Chat {
    /// A chat route at `path`; `relaying` when a backplane shares its rooms.
    pub fn new(config: ChatConfig, path: &str, relaying: bool) -> Chat {
        Chat {
            config: RefCell::new(config),
            rooms: RefCell::new(Rooms::default()),
            path: path.to_owned(),
            relaying,
            remote: RefCell::default(),
        }
    }

    fn channel(&self, room: &str) -> String {
        format!("{}:{room}", self.path)
    }

    /// Members of room `name` here and, as announced, in other processes.
    fn total(&self, name: &str, here: usize) -> usize {
        here + self
            .remote
            .borrow()
            .get(name)
            .map_or(0, |nodes| nodes.values().sum())
    }
}

impl RouteHandler for Chat {
    fn open(&self, opening: &Opening<'_>, fx: &mut Effects) -> Result<Slot, Rejection> {
        let (request, peer) = (opening.request, opening.peer);
        let config = self.config.borrow();
        let name = request
            .query()
            .and_then(|q| query_param(q, &config.room_param))
            .unwrap_or_default();
        if name.len() > MAX_ROOM_NAME {
            return Err(Rejection::new(
                400,
                format!("room name over {MAX_ROOM_NAME} bytes"),
            ));
        }
        let mut rooms = self.rooms.borrow_mut();
        let room = rooms
            .join(&name, peer.key, config.max_rooms, config.max_members)
            .map_err(|e| Rejection::new(503, format!("chat: {e}")))?;
        let here = rooms.members(room).len();
        if self.relaying {
            if here == 1 {
                fx.relay(Relay::Subscribe(self.channel(&name)));
            }
            let join = presence(RELAY_JOIN, peer.id, here);
            fx.relay(Relay::Publish(self.channel(&name), join));
        }
        if config.announce {
            let members = self.total(&name, here);
            let welcome = Announcement::Welcome {
                id: peer.id,
                room: &name,
                members,
            };
            fx.reply(welcome.message());
            let join = Announcement::Join {
                id: peer.id,
                members,
            };
            fx.publish(join.message(), room, false);
        }
        Ok(room)
    }

    fn message(&self, _: Peer, room: Slot, message: MessageRef<'_>, fx: &mut Effects) {
        if self.relaying {
            let channel = self.channel(self.rooms.borrow().name(room));
            fx.relay(Relay::Publish(channel, relayed_message(message)));
        }
        let echo_to_sender = self.config.borrow().echo_to_sender;
        fx.publish(message.to_message(), room, echo_to_sender);
    }

    fn closed(&self, peer: Peer, room: Slot, fx: &mut Effects) {
        let mut rooms = self.rooms.borrow_mut();
        let name = rooms.name(room).to_owned();
        rooms.leave(room, peer.key);
        let here = rooms.members(room).len();
        if self.relaying {
            let leave = presence(RELAY_LEAVE, peer.id, here);
            fx.relay(Relay::Publish(self.channel(&name), leave));
            if here == 0 {
                fx.relay(Relay::Unsubscribe(self.channel(&name)));
                self.remote.borrow_mut().remove(&name);
            }
        }
        if self.config.borrow().announce && here > 0 {
            let leave = Announcement::Leave {
                id: peer.id,
                members: self.total(&name, here),
            };
            fx.publish(leave.message(), room, false);
        }
    }

    fn relayed(&self, channel: &str, node: &str, payload: &[u8], fx: &mut Effects) {
        let Some(name) = channel
            .strip_prefix(self.path.as_str())
            .and_then(|c| c.strip_prefix(':'))
        else {
            return;
        };
        let rooms = self.rooms.borrow();
        let Some(room) = rooms.find(name) else {
            return; // nobody here any more
        };
        let Some((&what, body)) = payload.split_first() else {
            return;
        };
        let kind = match what {
            RELAY_TEXT => Some(MessageKind::Text),
            RELAY_BINARY => Some(MessageKind::Binary),
            _ => None,
        };
        if let Some(kind) = kind {
            let message = Message {
                kind,
                data: body.to_vec(),
            };
            fx.publish(message, room, false);
            return;
        }
        let Some((id, count)) = parse_presence(body) else {
            return;
        };
        let known = {
            let mut remote = self.remote.borrow_mut();
            let nodes = remote.entry(name.to_owned()).or_default();
            let known = nodes.contains_key(node);
            if count == 0 {
                nodes.remove(node);
            } else {
                nodes.insert(node.to_owned(), count);
            }
            known
        };
        let here = rooms.members(room).len();
        if what == RELAY_JOIN && !known {
            let ours = presence(RELAY_COUNT, 0, here);
            fx.relay(Relay::Publish(channel.to_owned(), ours));
        }
        if !self.config.borrow().announce {
            return;
        }
        let members = self.total(name, here);
        let announcement = match what {
            RELAY_JOIN => Announcement::Join { id, members },
            RELAY_LEAVE => Announcement::Leave { id, members },
            _ => return,
        };
        fx.publish(announcement.message(), room, false);
    }

    fn published(&self, room: &str, message: Message, fx: &mut Effects) -> Result<usize, String> {
        if room.len() > MAX_ROOM_NAME {
            return Err(format!("room name over {MAX_ROOM_NAME} bytes"));
        }
        if self.relaying {
            fx.relay(Relay::Publish(
                self.channel(room),
                relayed_message(message.borrowed()),
            ));
        }
        let rooms = self.rooms.borrow();
        let Some(id) = rooms.find(room) else {
            return Ok(0);
        };
        let members = rooms.members(id).len();
        fx.publish(message, id, false);
        Ok(members)
    }

    fn subscribers(&self, room: Topic, deliver: &mut dyn FnMut(&[ConnKey])) {
        deliver(self.rooms.borrow().members(room));
    }

    fn reconfigure(&self, kind: &RouteKind) {
        if let RouteKind::Chat(config) = kind {
            *self.config.borrow_mut() = config.clone();
        }
    }

    fn census(&self) -> Census {
        let rooms = self.rooms.borrow();
        Census {
            rooms: rooms.room_count() as u64,
            members: rooms.member_count() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::core::{parse_request, Request, RequestLimits};

    fn request(target: &str) -> Request {
        let head = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        parse_request(head.as_bytes(), &RequestLimits::default())
            .unwrap()
            .unwrap()
            .0
    }

    fn texts(fx: &mut Effects) -> Vec<String> {
        fx.take_replies()
            .map(|m| String::from_utf8(m.data).unwrap())
            .collect()
    }

    /// What the fan-out would deliver: each publication's text and recipients.
    fn fanned_out(fx: &mut Effects) -> Vec<(String, Vec<ConnKey>)> {
        let mut seen = Vec::new();
        fx.drain_publications(|run, keys, skip| {
            for m in run.messages() {
                let to = keys.iter().copied().filter(|&k| Some(k) != skip).collect();
                seen.push((String::from_utf8(m.data.clone()).unwrap(), to));
            }
        });
        seen
    }

    #[test]
    fn announcements_are_json_with_the_type_first_and_names_escaped() {
        let chat: Rc<dyn RouteHandler> = Rc::new(Chat::new(ChatConfig::default(), "/chat", false));
        let mut fx = Effects::default();
        let a = Peer { key: 1, id: 7 };
        // As the server does: the origin is named before each handler call.
        fx.set_origin(Some(a.key), &chat);
        let room = chat
            .open(&Opening::new(&request("/chat?room=a%22b"), a), &mut fx)
            .unwrap();
        assert_eq!(
            texts(&mut fx),
            vec![r#"{"type":"welcome","id":7,"room":"a\"b","members":1}"#]
        );
        assert_eq!(
            fanned_out(&mut fx),
            vec![(r#"{"type":"join","id":7,"members":1}"#.to_owned(), vec![])]
        );
        let b = Peer { key: 2, id: 8 };
        fx.set_origin(Some(b.key), &chat);
        chat.open(&Opening::new(&request("/chat?room=a%22b"), b), &mut fx)
            .unwrap();
        fx.take_replies().for_each(drop);
        assert_eq!(
            fanned_out(&mut fx),
            vec![(r#"{"type":"join","id":8,"members":2}"#.to_owned(), vec![1])]
        );
        fx.set_origin(None, &chat);
        chat.closed(b, room, &mut fx);
        assert_eq!(
            fanned_out(&mut fx),
            vec![(r#"{"type":"leave","id":8,"members":1}"#.to_owned(), vec![1])]
        );
    }

    #[test]
    fn a_message_reaches_the_room_and_the_sender_only_when_configured() {
        for echo_to_sender in [true, false] {
            let config = ChatConfig {
                echo_to_sender,
                announce: false,
                ..ChatConfig::default()
            };
            let chat: Rc<dyn RouteHandler> = Rc::new(Chat::new(config, "/chat", false));
            let mut fx = Effects::default();
            let mut room = 0;
            for key in 1..=3 {
                fx.set_origin(Some(key), &chat);
                room = chat
                    .open(
                        &Opening::new(
                            &request("/chat?room=r"),
                            Peer {
                                key,
                                id: key as u64,
                            },
                        ),
                        &mut fx,
                    )
                    .unwrap();
            }
            fx.set_origin(Some(2), &chat);
            let message = Message {
                kind: MessageKind::Text,
                data: b"hi".to_vec(),
            };
            chat.message(Peer { key: 2, id: 2 }, room, message.borrowed(), &mut fx);
            let mut own = 0;
            fx.deliver_to_sender(|_| own += 1);
            assert_eq!(own, usize::from(echo_to_sender));
            assert_eq!(fanned_out(&mut fx), vec![("hi".to_owned(), vec![1, 3])]);
        }
    }

    #[test]
    fn a_full_room_and_a_long_name_are_refused_with_their_status() {
        let config = ChatConfig {
            max_members: 1,
            ..ChatConfig::default()
        };
        let chat: Rc<dyn RouteHandler> = Rc::new(Chat::new(config, "/chat", false));
        let mut fx = Effects::default();
        fx.set_origin(Some(1), &chat);
        chat.open(
            &Opening::new(&request("/chat?room=x"), Peer { key: 1, id: 1 }),
            &mut fx,
        )
        .unwrap();
        let full = chat.open(
            &Opening::new(&request("/chat?room=x"), Peer { key: 2, id: 2 }),
            &mut fx,
        );
        assert_eq!(full.map_err(|r| r.status), Err(503));
        let long = format!("/chat?room={}", "n".repeat(MAX_ROOM_NAME + 1));
        let refused = chat.open(
            &Opening::new(&request(&long), Peer { key: 3, id: 3 }),
            &mut fx,
        );
        assert_eq!(refused.map_err(|r| r.status), Err(400));
    }
}
