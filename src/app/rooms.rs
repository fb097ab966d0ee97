//! Chat rooms: which connections are members of which room, per route, with
//! limits on rooms and members.
//!
//! Owns membership only. It must never encode or send anything: the reactor
//! encodes a message once and queues it for every member this module lists.

use std::collections::HashMap;

use crate::app::RouteId;

/// Identifies a room for as long as it has members.
pub type RoomId = usize;

#[derive(Debug)]
struct Room {
    route: RouteId,
    name: String,
    members: Vec<usize>,
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

/// Every room of every chat route.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: slab::Slab<Room>,
    by_name: HashMap<(RouteId, String), RoomId>,
    rooms_per_route: HashMap<RouteId, usize>,
}

impl Rooms {
    /// Adds connection `member` to room `name` of `route`, creating the room if needed.
    pub fn join(
        &mut self,
        route: RouteId,
        name: &str,
        member: usize,
        max_rooms: usize,
        max_members: usize,
    ) -> Result<RoomId, JoinError> {
        if let Some(&id) = self.by_name.get(&(route, name.to_owned())) {
            let room = &mut self.rooms[id];
            if room.members.len() >= max_members {
                return Err(JoinError::RoomFull);
            }
            room.members.push(member);
            return Ok(id);
        }
        let count = self.rooms_per_route.entry(route).or_default();
        if *count >= max_rooms {
            return Err(JoinError::TooManyRooms);
        }
        *count += 1;
        let id = self.rooms.insert(Room {
            route,
            name: name.to_owned(),
            members: vec![member],
        });
        self.by_name.insert((route, name.to_owned()), id);
        Ok(id)
    }

    /// Removes `member` from `room`; the room goes away with its last member.
    pub fn leave(&mut self, room: RoomId, member: usize) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if let Some(pos) = r.members.iter().position(|&m| m == member) {
            r.members.swap_remove(pos);
        }
        if r.members.is_empty() {
            let r = self.rooms.remove(room);
            self.by_name.remove(&(r.route, r.name));
            if let Some(count) = self.rooms_per_route.get_mut(&r.route) {
                *count -= 1;
            }
        }
    }

    /// The members of `room` (empty if it does not exist).
    pub fn members(&self, room: RoomId) -> &[usize] {
        self.rooms.get(room).map_or(&[], |r| &r.members)
    }

    /// The room's name.
    pub fn name(&self, room: RoomId) -> &str {
        self.rooms.get(room).map_or("", |r| &r.name)
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_kept_apart_by_route_and_name() {
        let mut rooms = Rooms::default();
        let a = rooms.join(0, "lobby", 1, 10, 10).unwrap();
        let b = rooms.join(0, "other", 2, 10, 10).unwrap();
        let c = rooms.join(1, "lobby", 3, 10, 10).unwrap();
        assert_eq!(rooms.join(0, "lobby", 4, 10, 10), Ok(a));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(rooms.members(a), &[1, 4]);
        assert_eq!(rooms.members(c), &[3]);
    }

    #[test]
    fn limits_on_rooms_and_members_hold() {
        let mut rooms = Rooms::default();
        rooms.join(0, "a", 1, 2, 2).unwrap();
        rooms.join(0, "a", 2, 2, 2).unwrap();
        assert_eq!(rooms.join(0, "a", 3, 2, 2), Err(JoinError::RoomFull));
        rooms.join(0, "b", 4, 2, 2).unwrap();
        assert_eq!(rooms.join(0, "c", 5, 2, 2), Err(JoinError::TooManyRooms));
        assert!(rooms.join(1, "c", 5, 2, 2).is_ok(), "limits are per route");
    }

    #[test]
    fn last_leave_removes_the_room_and_frees_its_slot() {
        let mut rooms = Rooms::default();
        let a = rooms.join(0, "a", 1, 1, 5).unwrap();
        rooms.leave(a, 1);
        assert_eq!(rooms.room_count(), 0);
        assert!(rooms.members(a).is_empty());
        assert!(rooms.join(0, "b", 2, 1, 5).is_ok());
    }
}
