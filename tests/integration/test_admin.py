"""The operator's window (/admin, src/admin.h, src/admin_api.h): off by
default; when on, the address allow-list and the bearer token; every API
action's effect as real clients see it; bad input refused with a 4xx and
nothing changed; bans and mutes kept across SIGHUP."""

import http.client
import json
import os
import signal
import subprocess
import tempfile
import unittest

from harness import HOST, OTHER_SOURCE, EarshotTestCase, earshot_bin, fixture_script, \
    lua_hook, make_hooks, render_config, wait_until
from wsclient import ConnectionClosed

TOKEN = "t0ken-for-the-admin-tests-0123"
AUTH = {"Authorization": "Bearer " + TOKEN}
ADMIN = {"admin": {"enabled": True, "token": TOKEN}}


def call(port, method, path, body=None, headers=None, source=HOST):
    """One HTTP request from `source`; (status, parsed JSON or raw bytes)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=5.0, source_address=(source, 0))
    try:
        data = body if body is None or isinstance(body, (bytes, str)) else json.dumps(body)
        hdrs = dict(headers or {})
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        if resp.getheader("Content-Type", "").startswith("application/json"):
            return resp.status, json.loads(raw)
        return resp.status, raw
    finally:
        conn.close()


class AdminTestCase(EarshotTestCase):
    config = ADMIN

    def api(self, name, body=None, headers=AUTH, source=HOST):
        return call(self.server.port, "GET" if body is None else "POST", "/admin/api/" + name,
                    body, headers, source)

    def ok(self, name, body=None):
        status, data = self.api(name, body)
        self.assertEqual(status, 200, "%s %r -> %r" % (name, body, data))
        return data

    def map_view(self, m):
        return self.ok("map?game=0&map=%d" % m)

    def moderation(self):
        return self.ok("moderation")

    def expect_kicked(self, ws, text, code, who=""):
        self.expect_error(ws, text)
        self.expect_close_code(ws, code, who=who)


class AdminOff(EarshotTestCase):
    """The stock config: no admin surface at all."""

    def test_everything_under_admin_is_not_found(self):
        m, a, b, a_id, b_id = self.matched_pair()
        for method, path, body in (("GET", "/admin", None), ("GET", "/admin/", None),
                                   ("GET", "/admin/admin.js", None),
                                   ("GET", "/admin/api/maps", None),
                                   ("POST", "/admin/api/kick", {"client_id": a_id})):
            status, data = call(self.server.port, method, path, body, AUTH)
            self.assertEqual((status, data), (404, b"not found\n"), path)
        self.expect_lists([a, b], [[b_id], [a_id]])


class AdminAuth(AdminTestCase):

    def test_no_token_wrong_token_and_wrong_scheme_get_401(self):
        m, a, b, a_id, b_id = self.matched_pair()
        for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"},
                        {"Authorization": "Bearer " + TOKEN + "x"},
                        {"Authorization": "Bearer " + TOKEN[:-1]},
                        {"Authorization": "Basic " + TOKEN},
                        {"Authorization": TOKEN}):
            for name, body in (("maps", None), ("kick", {"client_id": a_id}),
                               ("ban", {"client_id": b_id, "seconds": 60})):
                status, data = self.api(name, body, headers=headers)
                self.assertEqual(status, 401, (headers, name))
                self.assertEqual(data, {"error": "a valid admin token is needed"})
        self.expect_lists([a, b], [[b_id], [a_id]])
        self.assertEqual(self.moderation(), {"bans": [], "mutes": []})
        self.assertNotIn(TOKEN, self.server.output())

    def test_an_address_off_the_allow_list_gets_403_even_with_the_token(self):
        m, a, b, a_id, b_id = self.matched_pair()
        for path in ("/admin/", "/admin/api/maps"):
            status, data = call(self.server.port, "GET", path, None, AUTH, source=OTHER_SOURCE)
            self.assertEqual((status, data), (403, b"forbidden\n"), path)
        status, _ = self.api("kick", {"client_id": a_id}, source=OTHER_SOURCE)
        self.assertEqual(status, 403)
        self.expect_lists([a, b], [[b_id], [a_id]])

    def test_the_page_is_served_without_the_token(self):
        for path in ("/admin", "/admin/", "/admin/index.html"):
            status, body = call(self.server.port, "GET", path)
            self.assertEqual(status, 200, path)
            self.assertIn(b'<script type="module" src="/admin/admin.js">', body)
        status, body = call(self.server.port, "GET", "/admin/admin.js")
        self.assertEqual(status, 200)
        self.assertIn(b"export const REFRESH_MS", body)
        for path in ("/admin/nope.js", "/admin/.hidden", "/admin/api"):
            self.assertEqual(call(self.server.port, "GET", path)[0], 404, path)


class AdminViews(AdminTestCase):

    def test_maps_map_and_client_show_what_the_clients_did(self):
        m, (a, b, c), (a_id, b_id, c_id) = self.place(("a", 0, 0), ("b", 3, 4), ("c", 100, 0))
        self.refresh(a)
        self.expect_peers(a, [b_id])
        maps = self.ok("maps")
        self.assertIn({"game_id": 0, "map_id": m, "clients": 3}, maps["maps"])
        self.assertEqual(maps["node"], os.uname().nodename)
        view = self.map_view(m)
        self.assertEqual(view["hearing_radius"], 20)
        self.assertEqual(view["capped"], [])
        got = {cl["id"]: (cl["x"], cl["y"], cl["channel"], sorted(cl["peers"]), cl["held"],
                          cl["muted"]) for cl in view["clients"]}
        self.assertEqual(got, {a_id: (0, 0, 0, [b_id], False, False),
                               b_id: (3, 4, 0, [a_id], False, False),
                               c_id: (100, 0, 0, [], False, False)})
        one = self.ok("client?id=" + a_id)
        self.assertEqual({k: one[k] for k in ("id", "address", "messages", "relays_refused",
                                              "resumable", "held", "muted", "peers", "capped",
                                              "game_id", "map_id", "x", "y", "node")},
                         {"id": a_id, "address": HOST, "messages": 2, "relays_refused": 0,
                          "resumable": False, "held": False, "muted": False, "peers": [b_id],
                          "capped": [], "game_id": 0, "map_id": m, "x": 0, "y": 0,
                          "node": os.uname().nodename})
        self.assertEqual(self.api("client?id=nobody-" + a_id), (404, {"error": "no client nobody-" + a_id}))


class AdminCapped(AdminTestCase):
    config = dict(ADMIN, session={"max_peers": 1})

    def test_the_pairs_the_crowd_cap_left_out_are_listed(self):
        m = self.new_map()
        a_id, b_id, c_id = self.cid("a"), self.cid("b"), self.cid("c")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 1, 0, expect=[a_id])
        self.expect_peers(a, [b_id])
        c = self.join(c_id, m, 3, 0)  # in range of both, who are full
        view = self.map_view(m)
        self.assertEqual(view["max_peers"], 1)
        self.assertEqual(sorted(sorted(p) for p in view["capped"]),
                         sorted([sorted([a_id, c_id]), sorted([b_id, c_id])]))
        self.assertEqual(sorted(self.ok("client?id=" + c_id)["capped"]), sorted([a_id, b_id]))
        self.assertEqual(self.ok("client?id=" + a_id)["capped"], [c_id])
        self.expect_lists([a, b, c], [[b_id], [a_id], []])


class AdminActions(AdminTestCase):

    def test_kick_sends_the_reason_closes_with_the_code_and_tells_the_peers(self):
        m, a, b, a_id, b_id = self.matched_pair()
        before = self.metrics()
        self.assertEqual(self.ok("kick", {"client_id": b_id, "reason": "spamming", "code": 4001}),
                         {"kicked": b_id, "code": 4001})
        self.expect_kicked(b, "kicked: spamming", 4001, who=b_id)
        self.expect_peers(a, [], who=a_id)
        self.assertDelta(before, self.metrics(), "earshot_errors_total", 1, kind="kicked")
        self.assertEqual([cl["id"] for cl in self.map_view(m)["clients"]], [a_id])
        self.assertIn("admin: 127.0.0.1 kicked %s (close 4001): spamming" % b_id,
                      self.server.output())
        # a kick is not a ban: it may come back
        b2 = self.join(b_id, m, 3, 4, expect=[a_id])
        self.expect_peers(a, [b_id])
        self.assertEqual(self.ok("kick", {"client_id": b_id}), {"kicked": b_id, "code": 4000})
        self.expect_kicked(b2, "kicked", 4000, who=b_id)

    def test_mute_refuses_the_clients_relays_until_unmuted(self):
        m, a, b, a_id, b_id = self.matched_pair()
        self.assertEqual(self.ok("mute", {"client_id": a_id, "reason": "harassing"}),
                         {"muted": a_id})
        self.send_relay(a, "offer", b_id, "sdp-1")
        self.expect_error(a, "relay to %s not allowed: muted" % b_id)
        self.send_relay(a, "candidate", b_id, "cand-1")
        self.expect_nothing(a, b)
        self.relay(b, b_id, a, a_id, "to-the-muted-one")  # it may still be called
        one = self.ok("client?id=" + a_id)
        self.assertEqual((one["muted"], one["relays_refused"]), (True, 2))
        mods = self.moderation()
        self.assertEqual([(u["client_id"], u["reason"], u["by"]) for u in mods["mutes"]],
                         [(a_id, "harassing", HOST)])
        # kept by id: a reconnection is still muted
        a.close()
        self.expect_peers(b, [])
        a = self.join(a_id, m, 0, 0, expect=[b_id])
        self.expect_peers(b, [a_id])
        self.send_relay(a, "answer", b_id, "sdp-2")
        self.expect_error(a, "relay to %s not allowed: muted" % b_id)
        self.assertEqual(self.ok("unmute", {"client_id": a_id}), {"unmuted": a_id})
        self.relay(a, a_id, b, b_id, "sdp-3")
        self.assertEqual(self.moderation()["mutes"], [])

    def test_ban_an_id_removes_it_and_keeps_it_out_until_lifted(self):
        m, a, b, a_id, b_id = self.matched_pair()
        got = self.ok("ban", {"client_id": b_id, "seconds": 600, "reason": "cheating"})
        self.assertEqual((got["banned"], got["kind"], got["kicked"]), (b_id, "client_id", [b_id]))
        self.expect_kicked(b, "banned: cheating", 4003, who=b_id)
        self.expect_peers(a, [])
        again = self.connect()
        self.move(again, b_id, m, 3, 4)
        self.expect_kicked(again, "banned: cheating", 4003, who="banned id coming back")
        self.expect_nothing(a)
        # another id from the same address is welcome
        self.join(self.cid("c"), m, 50, 50)
        bans = self.moderation()["bans"]
        self.assertEqual([(x["kind"], x["key"], x["reason"], x["by"]) for x in bans],
                         [("client_id", b_id, "cheating", HOST)])
        self.assertAlmostEqual(bans[0]["until"] - bans[0]["since"], 600, places=2)
        self.assertEqual(self.ok("unban", {"client_id": b_id}), {"unbanned": b_id})
        self.join(b_id, m, 3, 4, expect=[a_id])
        self.expect_peers(a, [b_id])

    def test_ban_an_address_removes_its_clients_and_keeps_it_out(self):
        m = self.new_map()
        a_id, o_id = self.cid("a"), self.cid("o")
        a = self.join(a_id, m, 0, 0, source_addr=HOST)
        o = self.join(o_id, m, 1, 1, expect=[a_id], source_addr=OTHER_SOURCE)
        self.expect_peers(a, [o_id])
        got = self.ok("ban", {"address": OTHER_SOURCE, "seconds": 60})
        self.assertEqual((got["banned"], got["kind"], got["kicked"]), (OTHER_SOURCE, "address", [o_id]))
        self.expect_kicked(o, "banned", 4003, who=o_id)
        self.expect_peers(a, [])
        o2 = self.connect(source_addr=OTHER_SOURCE)
        self.move(o2, self.cid("fresh"), m, 1, 1)
        self.expect_kicked(o2, "banned", 4003, who="a new id from the banned address")
        self.join(self.cid("fine"), m, 40, 40, source_addr=HOST)
        self.assertEqual(self.ok("unban", {"address": OTHER_SOURCE}), {"unbanned": OTHER_SOURCE})
        self.join(o_id, m, 1, 1, expect=[a_id], source_addr=OTHER_SOURCE)


class AdminBadInput(AdminTestCase):

    def test_bad_requests_get_a_4xx_and_change_nothing(self):
        m, a, b, a_id, b_id = self.matched_pair()
        self.ok("mute", {"client_id": a_id})
        self.ok("ban", {"client_id": "someone-else", "seconds": 60})
        before = self.moderation()
        cases = [
            ("kick", b"{not json", 400), ("kick", b"", 400), ("kick", b"[1]", 400),
            ("kick", b'{"client_id": "x", "client_id": "y"}', 400),
            ("kick", {}, 400), ("kick", {"client_id": 7}, 400), ("kick", {"client_id": ""}, 400),
            ("kick", {"client_id": "x" * 129}, 400), ("kick", {"client_id": "a\nb"}, 400),
            ("kick", {"client_id": "nobody"}, 404),
            ("kick", {"client_id": b_id, "code": 1000}, 400),
            ("kick", {"client_id": b_id, "code": 3999}, 400),
            ("kick", {"client_id": b_id, "code": 5000}, 400),
            ("kick", {"client_id": b_id, "code": 4000.5}, 400),
            ("kick", {"client_id": b_id, "code": "4000"}, 400),
            ("kick", {"client_id": b_id, "reason": "line\nbreak"}, 400),
            ("kick", {"client_id": b_id, "reason": "r" * 201}, 400),
            ("mute", {"client_id": "nobody"}, 404), ("unmute", {"client_id": b_id}, 404),
            ("ban", {"client_id": b_id}, 400),
            ("ban", {"client_id": b_id, "seconds": 0}, 400),
            ("ban", {"client_id": b_id, "seconds": -60}, 400),
            ("ban", {"client_id": b_id, "seconds": 0.5}, 400),
            ("ban", {"client_id": b_id, "seconds": 1e12}, 400),
            ("ban", {"client_id": b_id, "seconds": 31622401}, 400),
            ("ban", {"client_id": b_id, "seconds": "60"}, 400),
            ("ban", {"client_id": b_id, "seconds": None}, 400),
            ("ban", {"seconds": 60}, 400),
            ("ban", {"client_id": b_id, "address": HOST, "seconds": 60}, 400),
            ("ban", {"address": "300.1.1.1", "seconds": 60}, 400),
            ("ban", {"address": "127.0.0.0/8", "seconds": 60}, 400),
            ("ban", {"address": "", "seconds": 60}, 400),
            ("unban", {"client_id": b_id}, 404), ("unban", {"address": HOST}, 404),
            ("nothing", {"client_id": b_id}, 404),
            ("maps", {"client_id": b_id}, 405),
        ]
        for name, body, status in cases:
            got, data = self.api(name, body)
            self.assertEqual(got, status, "%s %r -> %r" % (name, body, data))
            self.assertIsInstance(data.get("error"), str, data)
        for path, status in (("kick", 405), ("map", 400), ("map?game=0", 400),
                             ("map?game=0&map=x", 400), ("map?game=0&map=99999999999", 400),
                             ("client", 400), ("client?id=", 404)):
            got, data = self.api(path)
            self.assertEqual(got, status, path)
        got, _ = call(self.server.port, "PUT", "/admin/api/kick", b"{}", AUTH)
        self.assertEqual(got, 405)
        big = json.dumps({"client_id": b_id, "reason": "x" * 20000})
        self.assertEqual(self.api("kick", big)[0], 413)
        self.assertEqual(self.moderation(), before)
        self.expect_lists([a, b], [[b_id], [a_id]])
        self.assertTrue(self.server.alive())


class AdminReload(AdminTestCase):

    def test_bans_and_mutes_survive_sighup(self):
        m, a, b, a_id, b_id = self.matched_pair()
        self.ok("mute", {"client_id": a_id, "reason": "r1"})
        self.ok("ban", {"client_id": "banned-" + a_id, "seconds": 300, "reason": "r2"})
        before = self.moderation()
        reloads = lambda: self.value(self.metrics(), "earshot_reloads_total", result="ok")
        n = reloads()
        self.server.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: reloads() == n + 1, 5.0), "no reload")
        self.assertEqual(self.moderation(), before)
        self.send_relay(a, "offer", b_id, "sdp")
        self.expect_error(a, "relay to %s not allowed: muted" % b_id)
        again = self.connect()
        self.move(again, "banned-" + a_id, m, 1, 1)
        self.expect_kicked(again, "banned: r2", 4003)


class AdminFromHooks(AdminTestCase):
    """A Lua join hook (tests/lua/moderation.lua) on the same lists."""
    hooks = [lua_hook("moderation", fixture_script("moderation"))] + make_hooks()

    def test_a_script_bans_and_mutes_and_the_core_enforces_it(self):
        m = self.new_map()
        troll = self.cid("troll")
        ws = self.connect()
        self.move(ws, troll, m, 0, 0)
        self.expect_error(ws, "troll")
        self.move(ws, troll, m, 0, 0)
        self.expect_kicked(ws, "banned: scripted ban", 4003, who="the core refuses the banned id")
        bans = self.moderation()["bans"]
        self.assertEqual([(b["kind"], b["key"], b["reason"], b["by"]) for b in bans],
                         [("client_id", troll, "scripted ban", "lua moderation")])
        loud = self.cid("mute-me")
        a = self.join(loud, m, 100, 0)
        b_id = self.cid("b")
        b = self.join(b_id, m, 101, 0, expect=[loud])
        self.expect_peers(a, [b_id])
        self.send_relay(a, "offer", b_id, "sdp")
        self.expect_error(a, "relay to %s not allowed: muted" % b_id)
        self.assertEqual(self.ok("client?id=" + loud)["muted"], True)
        for who, text in ((loud, "muted=true banned=false"), (troll, "muted=false banned=true"),
                          (b_id, "muted=false banned=false")):
            ask = self.connect()
            self.move(ask, "ask-" + who, m, 500, 500)
            self.expect_error(ask, text)
        ask = self.connect()
        self.move(ask, "unmute-" + loud, m, 500, 500)
        self.expect_error(ask, "unmuted=true")
        self.move(ask, "unmute-" + loud, m, 500, 500)
        self.expect_error(ask, "unmuted=false")
        self.relay(a, loud, b, b_id, "sdp-after")
        self.move(ask, "bad-ban", m, 500, 500)
        self.expect_error(ask, "false false false")
        self.assertEqual(len(self.moderation()["bans"]), 1)


class AdminConfig(unittest.TestCase):
    """admin.enabled needs a token; the allow-list's entries are checked."""

    def check(self, admin, files=None):
        d = tempfile.mkdtemp(prefix="earshot-admin-cfg-")
        for name, text in (files or {}).items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        path = os.path.join(d, "e.cfg")
        with open(path, "w") as f:
            f.write(render_config({"admin": admin, "hooks": make_hooks()}))
        p = subprocess.run([earshot_bin(), "-c", path, "--check-config"], capture_output=True,
                           text=True, timeout=30)
        return p.returncode, p.stderr

    def test_enabled_without_a_long_enough_token_is_refused(self):
        for admin in ({"enabled": True}, {"enabled": True, "token": "short"}):
            code, err = self.check(admin)
            self.assertEqual(code, 2, err)
            self.assertIn("'admin' is enabled without a token of at least 16 bytes", err)

    def test_token_file_and_allow_entries(self):
        code, err = self.check({"enabled": True, "token_file": "tok"}, {"tok": TOKEN + "\n"})
        self.assertEqual(code, 0, err)
        code, err = self.check({"enabled": True, "token": TOKEN, "token_file": "tok"},
                               {"tok": TOKEN})
        self.assertEqual(code, 2)
        self.assertIn("set 'token' or 'token_file', not both", err)
        code, err = self.check({"enabled": True, "token": TOKEN,
                                "allow": ["10.0.0.0/8", "fd00::/8", "192.168.1.7"]})
        self.assertEqual(code, 0, err)
        for bad, why in (("10.0.0.0/33", "needs a prefix length of 0 to 32"),
                         ("nonsense", "is not an IP address or address/prefix")):
            code, err = self.check({"enabled": True, "token": TOKEN, "allow": [bad]})
            self.assertEqual(code, 2)
            self.assertIn("'allow' entry \"%s\" %s" % (bad, why), err)


if __name__ == "__main__":
    unittest.main()
