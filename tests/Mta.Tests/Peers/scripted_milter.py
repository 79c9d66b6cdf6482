#!/usr/bin/python3
"""A milter (pymilter, over Sendmail's libmilter) whose answers the test chooses through the mail it sends.

usage: scripted_milter.py SOCKET EVENTS_FILE NAME [noreply]

Every event is written to EVENTS_FILE as one JSON line (event, arguments, the macros it came with). What it does:
  MAIL FROM <reject-mail@...>      reject the MAIL
  MAIL FROM <accept-mail@...>      accept the message: no more events for it
  RCPT TO <reject-rcpt@...>        550 5.7.1 for that recipient only (a custom reply)
  RCPT TO <tempfail-rcpt@...>      tempfail that recipient
  Subject: reject                  a two-line 554 at the end of the message
  Subject: tempfail                tempfail the message
  Subject: discard                 discard it
  Subject: quarantine              hold it ("scripted quarantine")
  Subject: slow                    answer the end of the message after 5 s
  Subject: skip                    SMFIR_SKIP after the first body chunk
  Subject: progress                take 2.4 s at the end of the message, sending SMFIR_PROGRESS every 0.6 s
  otherwise, at the end of every message:
    add "X-Milter-NAME: seen", insert "X-First-NAME: top" at index 0, delete the first "X-Remove-Me",
    change the first "X-Change-Me" to "changed"; and by Subject word:
    rewrite-body (new body), change-from (<changed@sender.test>), add-rcpt (<added@rcpt.test>),
    del-rcpt (delete <gone@rcpt.test>), bad-rcpt (add <not an address>)
With 'noreply', the milter asks for no replies to header events (SMFIP_NR_HDR) and for no body events.
"""
import json
import sys
import time

import Milter

SOCKET, EVENTS, NAME = sys.argv[1], sys.argv[2], sys.argv[3]
NOREPLY = len(sys.argv) > 4 and sys.argv[4] == "noreply"
MACROS = ["j", "{daemon_name}", "_", "{client_addr}", "{client_port}", "{client_name}", "i", "{mail_addr}", "{rcpt_addr}",
          "{auth_authen}", "{tls_version}", "{cipher}"]


def record(event, milter, *args):
    seen = {m: milter.getsymval(m) for m in MACROS if milter.getsymval(m) is not None}
    with open(EVENTS, "a") as f:
        f.write(json.dumps({"milter": NAME, "event": event, "args": [str(a) for a in args], "macros": seen}) + "\n")


class Scripted(Milter.Base):
    def __init__(self):
        self.subject = ""
        self.chunks = 0

    def connect(self, hostname, family, hostaddr):
        record("connect", self, hostname, hostaddr[0] if hostaddr else "")
        return Milter.CONTINUE

    def hello(self, name):
        record("helo", self, name)
        return Milter.CONTINUE

    def envfrom(self, sender, *params):
        record("mail", self, sender, *params)
        self.subject, self.chunks = "", 0
        if "accept-mail@" in sender:
            return Milter.ACCEPT
        return Milter.REJECT if "reject-mail@" in sender else Milter.CONTINUE

    def envrcpt(self, to, *params):
        record("rcpt", self, to, *params)
        if "reject-rcpt@" in to:
            self.setreply("550", "5.7.1", "no such user here")
            return Milter.REJECT
        return Milter.TEMPFAIL if "tempfail-rcpt@" in to else Milter.CONTINUE

    def data(self):
        record("data", self)
        return Milter.CONTINUE

    def header(self, name, value):
        record("header", self, name, value)
        if name.lower() == "subject":
            self.subject = value.strip()
        return Milter.CONTINUE

    def eoh(self):
        record("eoh", self)
        return Milter.CONTINUE

    def body(self, chunk):
        self.chunks += 1
        record("body", self, len(chunk))
        return Milter.SKIP if self.subject == "skip" else Milter.CONTINUE

    def unknown(self, command):
        record("unknown", self, command)
        self.setreply("502", "5.5.1", "unknown to the milter too")
        return Milter.REJECT

    def abort(self):
        record("abort", self)
        return Milter.CONTINUE

    def close(self):
        record("close", self)
        return Milter.CONTINUE

    def eom(self):
        record("eom", self, self.chunks)
        s = self.subject
        if s == "reject":
            self.setreply("554", "5.7.1", "first line", "second line")
            return Milter.REJECT
        if s == "tempfail":
            return Milter.TEMPFAIL
        if s == "discard":
            return Milter.DISCARD
        if s == "slow":
            time.sleep(5)
        if s == "progress":
            for _ in range(4):
                time.sleep(0.6)
                self.progress()
        if s == "quarantine":
            self.quarantine("scripted quarantine")
            return Milter.CONTINUE
        self.addheader("X-Milter-" + NAME, "seen")
        self.addheader("X-First-" + NAME, "top", 0)
        self.chgheader("X-Remove-Me", 1, "")
        self.chgheader("X-Change-Me", 1, "changed")
        if "rewrite-body" in s:
            self.replacebody(b"the milter's body\r\n")
        if "change-from" in s:
            self.chgfrom("<changed@sender.test>")
        if "add-rcpt" in s:
            self.addrcpt("<added@rcpt.test>")
        if "del-rcpt" in s:
            self.delrcpt("<gone@rcpt.test>")
        if "bad-rcpt" in s:
            self.addrcpt("<not an address>")
        return Milter.CONTINUE


class Quiet(Scripted):
    """Asks for no reply to header events and for no body at all."""

    @Milter.noreply
    def header(self, name, value):
        return Scripted.header(self, name, value)

    @Milter.nocallback
    def body(self, chunk):
        return Milter.CONTINUE


if __name__ == "__main__":
    Milter.factory = Quiet if NOREPLY else Scripted
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY | Milter.ADDRCPT | Milter.DELRCPT | Milter.CHGFROM | Milter.QUARANTINE)
    print("ready", flush=True)
    Milter.runmilter("scripted", SOCKET, 60)
