//! Chat room membership for one chat route: which connections are in which room,
//! with limits on rooms and members.
//!
//! Owns membership only. It must never encode, send or announce anything: the
//! chat handler decides what members receive.

use std::collections::HashMap;

use crate::app::handler::ConnKey;

/// Identifies a room for as long as it has members.
pub type RoomId = u32;

#[derive(Debug)]
struct Room {
    name: String,
    members: Vec<ConnKey>,
}

/// Why a connection could not join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// The route already has `max_rooms` rooms.
    TooManyRooms,
    /// The room already has `max_members` members.
    RoomFull,
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::TooManyRooms => f.write_str("too many rooms"),
            JoinError::RoomFull => f.write_str("room is full"),
        }
    }
}

/// Every room of one chat route.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: slab::Slab<Room>,
    by_name: HashMap<String, RoomId>,
}

impl Rooms {
    /// Adds `member` to room `name`, creating the room if needed.
    pub fn join(
        &mut self,
        name: &str,
        member: ConnKey,
        max_rooms: usize,
        max_members: usize,
    ) -> Result<RoomId, JoinError> {
        if let Some(&id) = self.by_name.get(name) {
            let room = &mut self.rooms[id as usize];
            if room.members.len() >= max_members {
                return Err(JoinError::RoomFull);
            }
            room.members.push(member);
            return Ok(id);
        }
        if self.rooms.len() >= max_rooms {
            return Err(JoinError::TooManyRooms);
        }
        let id = self.rooms.insert(Room {
            name: name.to_owned(),
            members: vec![member],
        }) as RoomId;
        self.by_name.insert(name.to_owned(), id);
        Ok(id)
    }

    /// Removes `member` from `room`; the room goes away with its last member.
    pub fn leave(&mut self, room: RoomId, member: ConnKey) {
        let Some(r) = self.rooms.get_mut(room as usize) else {
            return;
        };
        if let Some(pos) = r.members.iter().position(|&m| m == member) {
            r.members.swap_remove(pos);
        }
        if r.members.is_empty() {
            let r = self.rooms.remove(room as usize);
            self.by_name.remove(&r.name);
        }
    }

    /// The room called `name`, if it has members.
    pub fn find(&self, name: &str) -> Option<RoomId> {
        self.by_name.get(name).copied()
    }

    /// The members of `room` (empty if it does not exist).
    pub fn members(&self, room: RoomId) -> &[ConnKey] {
        self.rooms.get(room as usize).map_or(&[], |r| &r.members)
    }

    /// The room's name.
    pub fn name(&self, room: RoomId) -> &str {
        self.rooms.get(room as usize).map_or("", |r| &r.name)
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Members over every room (one pass over the rooms).
    pub fn member_count(&self) -> usize {
        self.rooms.iter().map(|(_, r)| r.members.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_kept_apart_by_name() {
        let mut rooms = Rooms::default();
        let a = rooms.join("lobby", 1, 10, 10).unwrap();
        let b = rooms.join("other", 2, 10, 10).unwrap();
        assert_eq!(rooms.join("lobby", 4, 10, 10), Ok(a));
        assert_ne!(a, b);
        assert_eq!(rooms.members(a), &[1, 4]);
        assert_eq!(rooms.members(b), &[2]);
    }

    #[test]
    fn limits_on_rooms_and_members_hold() {
        let mut rooms = Rooms::default();
        rooms.join("a", 1, 2, 2).unwrap();
        rooms.join("a", 2, 2, 2).unwrap();
        assert_eq!(rooms.join("a", 3, 2, 2), Err(JoinError::RoomFull));
        rooms.join("b", 4, 2, 2).unwrap();
        assert_eq!(rooms.join("c", 5, 2, 2), Err(JoinError::TooManyRooms));
        assert_eq!((rooms.room_count(), rooms.member_count()), (2, 3));
    }

    #[test]
    fn last_leave_removes_the_room_and_frees_its_slot() {
        let mut rooms = Rooms::default();
        let a = rooms.join("a", 1, 1, 5).unwrap();
        rooms.leave(a, 1);
        assert_eq!(rooms.room_count(), 0);
        assert!(rooms.members(a).is_empty());
        assert!(rooms.join("b", 2, 1, 5).is_ok());
    }
}
