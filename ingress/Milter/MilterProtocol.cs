namespace Mta.Ingress.Milter;

/// <summary>
/// Sendmail's mail filter protocol, version 6, as Postfix's milter8.c speaks it: the codes and flags of libmilter's
/// <c>mfdef.h</c>. Each packet is a 4-octet big-endian length (the code included), a one-octet code, and its data.
/// </summary>
public static class MilterProtocol
{
    /// <summary>The protocol version offered (Postfix's <c>milter_protocol</c> default).</summary>
    public const uint Version = 6;

    /// <summary>The most data a packet may carry unless larger buffers are negotiated (libmilter's MILTER_CHUNK_SIZE).</summary>
    public const int MaxData = 65535;
}

/// <summary>What the MTA sends (SMFIC_*).</summary>
public enum MilterCommand : byte
{
    /// <summary>SMFIC_ABORT: the transaction is over without a message.</summary>
    Abort = (byte)'A',
    /// <summary>SMFIC_BODY: a chunk of the body.</summary>
    Body = (byte)'B',
    /// <summary>SMFIC_CONNECT: the client's name, family, port and address.</summary>
    Connect = (byte)'C',
    /// <summary>SMFIC_MACRO: macros for the command that follows.</summary>
    Macro = (byte)'D',
    /// <summary>SMFIC_BODYEOB: the end of the message; modifications come back.</summary>
    EndOfMessage = (byte)'E',
    /// <summary>SMFIC_HELO: the HELO or EHLO name.</summary>
    Helo = (byte)'H',
    /// <summary>SMFIC_QUIT_NC: the connection ends, another may follow on the same socket.</summary>
    QuitNewConnection = (byte)'K',
    /// <summary>SMFIC_HEADER: one header field.</summary>
    Header = (byte)'L',
    /// <summary>SMFIC_MAIL: MAIL FROM and its parameters.</summary>
    Mail = (byte)'M',
    /// <summary>SMFIC_EOH: the end of the header.</summary>
    EndOfHeader = (byte)'N',
    /// <summary>SMFIC_OPTNEG: version, actions and protocol steps.</summary>
    OptionNegotiation = (byte)'O',
    /// <summary>SMFIC_QUIT: the conversation ends.</summary>
    Quit = (byte)'Q',
    /// <summary>SMFIC_RCPT: RCPT TO and its parameters.</summary>
    Rcpt = (byte)'R',
    /// <summary>SMFIC_DATA: the DATA command.</summary>
    Data = (byte)'T',
    /// <summary>SMFIC_UNKNOWN: a command the MTA does not know.</summary>
    Unknown = (byte)'U',
}

/// <summary>What a milter answers (SMFIR_*).</summary>
public enum MilterReplyCode : byte
{
    /// <summary>SMFIR_ADDRCPT.</summary>
    AddRecipient = (byte)'+',
    /// <summary>SMFIR_DELRCPT.</summary>
    DeleteRecipient = (byte)'-',
    /// <summary>SMFIR_ADDRCPT_PAR: a recipient with ESMTP parameters.</summary>
    AddRecipientWithParameters = (byte)'2',
    /// <summary>SMFIR_SHUTDOWN (421).</summary>
    Shutdown = (byte)'4',
    /// <summary>SMFIR_ACCEPT: accept, no further events.</summary>
    Accept = (byte)'a',
    /// <summary>SMFIR_REPLBODY: (part of) the new body.</summary>
    ReplaceBody = (byte)'b',
    /// <summary>SMFIR_CONTINUE.</summary>
    Continue = (byte)'c',
    /// <summary>SMFIR_DISCARD: accept and drop.</summary>
    Discard = (byte)'d',
    /// <summary>SMFIR_CHGFROM: a new envelope sender.</summary>
    ChangeFrom = (byte)'e',
    /// <summary>SMFIR_CONN_FAIL.</summary>
    ConnectionFailure = (byte)'f',
    /// <summary>SMFIR_ADDHEADER.</summary>
    AddHeader = (byte)'h',
    /// <summary>SMFIR_INSHEADER: a header field at an index.</summary>
    InsertHeader = (byte)'i',
    /// <summary>SMFIR_SETSYMLIST: the macros the milter wants per stage.</summary>
    SetSymbolList = (byte)'l',
    /// <summary>SMFIR_CHGHEADER: change or delete (empty value) the n-th field of a name.</summary>
    ChangeHeader = (byte)'m',
    /// <summary>SMFIR_PROGRESS: still working, restart the timeout.</summary>
    Progress = (byte)'p',
    /// <summary>SMFIR_QUARANTINE: hold the message, with a reason.</summary>
    Quarantine = (byte)'q',
    /// <summary>SMFIR_REJECT (5xx).</summary>
    Reject = (byte)'r',
    /// <summary>SMFIR_SKIP: no more body chunks wanted.</summary>
    Skip = (byte)'s',
    /// <summary>SMFIR_TEMPFAIL (4xx).</summary>
    Tempfail = (byte)'t',
    /// <summary>SMFIR_REPLYCODE: a whole SMTP reply.</summary>
    ReplyCode = (byte)'y',
    /// <summary>The answer to SMFIC_OPTNEG.</summary>
    OptionNegotiation = (byte)'O',
}

/// <summary>What a milter may do at the end of a message (SMFIF_*), offered by the MTA and asked for by the milter.</summary>
[Flags]
public enum MilterActions : uint
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>SMFIF_ADDHDRS.</summary>
    AddHeaders = 0x01,
    /// <summary>SMFIF_CHGBODY.</summary>
    ChangeBody = 0x02,
    /// <summary>SMFIF_ADDRCPT.</summary>
    AddRecipients = 0x04,
    /// <summary>SMFIF_DELRCPT.</summary>
    DeleteRecipients = 0x08,
    /// <summary>SMFIF_CHGHDRS.</summary>
    ChangeHeaders = 0x10,
    /// <summary>SMFIF_QUARANTINE.</summary>
    Quarantine = 0x20,
    /// <summary>SMFIF_CHGFROM.</summary>
    ChangeFrom = 0x40,
    /// <summary>SMFIF_ADDRCPT_PAR.</summary>
    AddRecipientsWithParameters = 0x80,
    /// <summary>SMFIF_SETSYMLIST.</summary>
    SetSymbolList = 0x100,
    /// <summary>Everything version 6 defines.</summary>
    All = 0x1FF,
}

/// <summary>Protocol steps (SMFIP_*): events a milter does not want, and events it will not answer.</summary>
[Flags]
public enum MilterSteps : uint
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>SMFIP_NOCONNECT.</summary>
    NoConnect = 0x01,
    /// <summary>SMFIP_NOHELO.</summary>
    NoHelo = 0x02,
    /// <summary>SMFIP_NOMAIL.</summary>
    NoMail = 0x04,
    /// <summary>SMFIP_NORCPT.</summary>
    NoRcpt = 0x08,
    /// <summary>SMFIP_NOBODY.</summary>
    NoBody = 0x10,
    /// <summary>SMFIP_NOHDRS.</summary>
    NoHeaders = 0x20,
    /// <summary>SMFIP_NOEOH.</summary>
    NoEndOfHeader = 0x40,
    /// <summary>SMFIP_NR_HDR: no reply to header events.</summary>
    NoReplyHeader = 0x80,
    /// <summary>SMFIP_NOUNKNOWN.</summary>
    NoUnknown = 0x100,
    /// <summary>SMFIP_NODATA.</summary>
    NoData = 0x200,
    /// <summary>SMFIP_SKIP: the MTA understands SMFIR_SKIP.</summary>
    Skip = 0x400,
    /// <summary>SMFIP_RCPT_REJ: send rejected recipients too.</summary>
    RejectedRecipients = 0x800,
    /// <summary>SMFIP_NR_CONN.</summary>
    NoReplyConnect = 0x1000,
    /// <summary>SMFIP_NR_HELO.</summary>
    NoReplyHelo = 0x2000,
    /// <summary>SMFIP_NR_MAIL.</summary>
    NoReplyMail = 0x4000,
    /// <summary>SMFIP_NR_RCPT.</summary>
    NoReplyRcpt = 0x8000,
    /// <summary>SMFIP_NR_DATA.</summary>
    NoReplyData = 0x10000,
    /// <summary>SMFIP_NR_UNKN.</summary>
    NoReplyUnknown = 0x20000,
    /// <summary>SMFIP_NR_EOH.</summary>
    NoReplyEndOfHeader = 0x40000,
    /// <summary>SMFIP_NR_BODY.</summary>
    NoReplyBody = 0x80000,
    /// <summary>SMFIP_HDR_LEADSPC: header values keep their leading space.</summary>
    HeaderLeadingSpace = 0x100000,
    /// <summary>Every step version 6 defines (what the MTA offers).</summary>
    All = 0x1FFFFF,
}
