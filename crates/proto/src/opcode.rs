//! Client opcodes (`ZooDefs.OpCode`) and special xids.

/// xid of a watch notification (server to client).
pub const XID_NOTIFICATION: i32 = -1;
/// xid of a ping.
pub const XID_PING: i32 = -2;
/// xid of an auth packet.
pub const XID_AUTH: i32 = -4;
/// xid of setWatches / setWatches2.
pub const XID_SET_WATCHES: i32 = -8;

macro_rules! opcodes {
    ($($name:ident = $val:expr;)*) => {
        /// An opcode as carried in `RequestHeader.type`, `TxnHeader.type` and multi headers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum OpCode { $($name = $val,)* }

        impl OpCode {
            pub fn from_i32(v: i32) -> Option<OpCode> {
                match v { $($val => Some(OpCode::$name),)* _ => None }
            }
        }
    };
}

opcodes! {
    Notification = 0;
    Create = 1;
    Delete = 2;
    Exists = 3;
    GetData = 4;
    SetData = 5;
    GetAcl = 6;
    SetAcl = 7;
    GetChildren = 8;
    Sync = 9;
    Ping = 11;
    GetChildren2 = 12;
    Check = 13;
    Multi = 14;
    Create2 = 15;
    Reconfig = 16;
    CheckWatches = 17;
    RemoveWatches = 18;
    CreateContainer = 19;
    DeleteContainer = 20;
    CreateTtl = 21;
    MultiRead = 22;
    Auth = 100;
    SetWatches = 101;
    Sasl = 102;
    GetEphemerals = 103;
    GetAllChildrenNumber = 104;
    SetWatches2 = 105;
    AddWatch = 106;
    WhoAmI = 107;
    CreateSession = -10;
    CloseSession = -11;
    Error = -1;
}

impl OpCode {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The short name ZooKeeper's `Request.op2String` prints (used by `cons` as `lop=`).
    pub fn name(self) -> &'static str {
        match self {
            OpCode::Notification => "NOTF",
            OpCode::Create => "CREA",
            OpCode::Delete => "DELE",
            OpCode::Exists => "EXIS",
            OpCode::GetData => "GETD",
            OpCode::SetData => "SETD",
            OpCode::GetAcl => "GETA",
            OpCode::SetAcl => "SETA",
            OpCode::GetChildren => "GETC",
            OpCode::Sync => "SYNC",
            OpCode::Ping => "PING",
            OpCode::GetChildren2 => "GETC",
            OpCode::Check => "CHEC",
            OpCode::Multi => "MULT",
            OpCode::Create2 => "CREA",
            OpCode::Reconfig => "RECO",
            OpCode::CheckWatches => "CHKW",
            OpCode::RemoveWatches => "REMW",
            OpCode::CreateContainer => "CCON",
            OpCode::DeleteContainer => "DCON",
            OpCode::CreateTtl => "CTTL",
            OpCode::MultiRead => "MLTR",
            OpCode::Auth => "AUTH",
            OpCode::SetWatches => "SETW",
            OpCode::Sasl => "SASL",
            OpCode::GetEphemerals => "GETE",
            OpCode::GetAllChildrenNumber => "GETACN",
            OpCode::SetWatches2 => "SETW",
            OpCode::AddWatch => "ADDW",
            OpCode::WhoAmI => "HOMI",
            OpCode::CreateSession => "SESS",
            OpCode::CloseSession => "CLOS",
            OpCode::Error => "ERR",
        }
    }

    /// Whether the op changes state (goes through a txn). Reads, pings and watch management
    /// do not.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::SetData
                | OpCode::SetAcl
                | OpCode::Check
                | OpCode::Multi
                | OpCode::Reconfig
                | OpCode::CreateSession
                | OpCode::CloseSession
        )
    }
}
