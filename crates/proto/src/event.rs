//! Watch event types, keeper states, watcher types and addWatch modes.

macro_rules! int_enum {
    ($(#[$m:meta])* $ty:ident { $($name:ident = $val:expr,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i32)]
        pub enum $ty { $($name = $val,)* }
        impl $ty {
            pub fn from_i32(v: i32) -> Option<$ty> {
                match v { $($val => Some($ty::$name),)* _ => None }
            }
            pub fn code(self) -> i32 { self as i32 }
        }
    };
}

int_enum!(
    /// `Watcher.Event.EventType`.
    EventType {
        None = -1,
        NodeCreated = 1,
        NodeDeleted = 2,
        NodeDataChanged = 3,
        NodeChildrenChanged = 4,
        DataWatchRemoved = 5,
        ChildWatchRemoved = 6,
        PersistentWatchRemoved = 7,
    }
);

int_enum!(
    /// `Watcher.Event.KeeperState`. Server-sent notifications always carry SyncConnected.
    KeeperState {
        Unknown = -1,
        Disconnected = 0,
        NoSyncConnected = 1,
        SyncConnected = 3,
        AuthFailed = 4,
        ConnectedReadOnly = 5,
        SaslAuthenticated = 6,
        Expired = -112,
        Closed = 7,
    }
);

int_enum!(
    /// `Watcher.WatcherType` as used by checkWatches / removeWatches.
    WatcherType {
        Children = 1,
        Data = 2,
        Any = 3,
        Persistent = 4,
        PersistentRecursive = 5,
    }
);

int_enum!(
    /// `AddWatchMode`.
    AddWatchMode {
        Persistent = 0,
        PersistentRecursive = 1,
    }
);
