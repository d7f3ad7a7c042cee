use uuid::Uuid;

/// A new time-ordered id (UUIDv7): sorts by creation time, which keeps B-tree inserts local.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}
