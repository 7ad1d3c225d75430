"""Malformed and out-of-order client messages (PROTOCOL.md: Envelope, Client -> server,
Registration and identity, the last bullet of Liveness and limits).

Every error leaves the connection open and changes no state; each test proves both.
"""

import json
import unittest

from harness import EarshotTestCase, OMIT

NOT_REGISTERED = "Client must send UpdatePosition first."
NOT_OBJECT = "Invalid message: expected a JSON object"
BAD_TYPE = "Invalid message: field 'type' must be a string"

RELAYS = {  # type -> payload field
    "SendOffer": "offer",
    "SendAnswer": "answer",
    "SendIceCandidate": "candidate",
}
DATA_TYPES = ["UpdatePosition"] + list(RELAYS)
INT_FIELDS = ["map_id", "x", "y", "channel", "game_id"]

# Raw JSON tokens that are not an int in the signed 32-bit range.
BAD_INT_TOKENS = [
    '"5"', '900.0', '9e2', '9E2', '1E+2', '0e0', '1.5', '-0.0', '2147483648', '-2147483649',
    '4294967296', '9223372036854775807', '9223372036854775808', '-9223372036854775809',
    '100000000000000000000000000000', '1e400', '-1e400', '1.0e-400', 'true', 'false', 'null', '[]', '{}', '[1]',
]
BAD_STRING_VALUES = [5, 1.5, None, True, [], {}, ["a"]]
BAD_IDS = [
    "", "a" * 129, "\u00e9" * 65, "\U0001F3A7" * 33, "a\u0001b", "\u0000", "a\u0000b",
    "a\nb", "\t", "x\u001f", "x\u007f", "\u007f",
]
GOOD_IDS = ["a" * 128, "\u00e9" * 64, "\U0001F3A7" * 32, "h\u00e9llo \U0001F3A7", "with space",
            'quote"back\\slash/', "\u65e5\u672c\u8a9e", "{}[]:,"]


def int_error(type_, field):
    return "Invalid %s: field '%s' must be an integer in the signed 32-bit range" % (type_, field)


def string_error(type_, field):
    return "Invalid %s: field '%s' must be a string" % (type_, field)


def missing_error(type_, field):
    return "Invalid %s: missing field '%s'" % (type_, field)


def data_error(type_):
    return "Invalid %s: field 'data' must be an object" % type_


def id_error(type_, field):
    return ("Invalid %s: field '%s' must be 1 to 128 bytes of UTF-8 with no control characters"
            % (type_, field))


def valid_data(type_, client_id="a", target_id="b"):
    if type_ == "UpdatePosition":
        return {"client_id": client_id, "map_id": 1, "x": 0, "y": 0, "channel": 0, "game_id": 0}
    return {"target_id": target_id, RELAYS[type_]: "payload"}


def position_text(**tokens):
    """An UpdatePosition with raw JSON tokens, e.g. x='9e2'."""
    fields = {"client_id": '"raw"', "map_id": "1", "x": "0", "y": "0"}
    fields.update(tokens)
    body = ",".join('"%s":%s' % (k, v) for k, v in fields.items() if v is not None)
    return '{"type":"UpdatePosition","data":{%s}}' % body


class ProtocolErrorsTest(EarshotTestCase):

    def send_expect(self, ws, text, error):
        ws.send_text(text)
        self.expect_error(ws, error)

    def each_invalid_json(self, texts):
        """Each text on one connection gets "Invalid JSON: ...", and it still works."""
        ws = self.connect()
        for text in texts:
            with self.subTest(text=text):
                ws.send_text(text)
                self.expect_error_prefix(ws, "Invalid JSON: ")
        self.assert_still_works(ws)

    def assert_still_works(self, ws, name="after"):
        """The connection is open, unregistered, and can register now."""
        self.assert_unregistered(ws)
        self.assertEqual(self.register(ws, self.cid(name), self.new_map(), 0, 0), [])
        ws.expect_nothing(0.2)

    # ------------------------------------------------------------- framing
    def test_binary_frame_unregistered(self):
        ws = self.connect()
        ws.send_binary(b'{"type":"UpdatePosition","data":{"client_id":"bin","map_id":1,"x":0,"y":0}}')
        self.expect_error(ws, "Binary frames are not supported")
        self.assert_still_works(ws)

    def test_binary_frame_registered_changes_nothing(self):
        m = self.new_map()
        a = self.join(self.cid("a"), m, 0, 0)
        b = self.join(self.cid("b"), m, 100, 0)
        # a binary UpdatePosition that would match a with b if it were processed
        a.send_binary(json.dumps(self.position(self.cid("a"), m, 95, 0)).encode())
        self.expect_error(a, "Binary frames are not supported")
        self.expect_nothing(a, b)
        self.refresh(a)
        self.expect_peers(a, [])

    # ---------------------------------------------------------------- JSON
    def test_invalid_json(self):
        cases = [
            "{", "", " ", "nul", "{'type': 'UpdatePosition'}", '{"type": "RequestPeerRefresh",}',
            '{"type":"RequestPeerRefresh"} x', '{"type":"RequestPeerRefresh"}{"type":"Disconnect"}',
            position_text(x="NaN"), position_text(x="Infinity"), position_text(x="01"),
            position_text(x="+1"), position_text(x="0x10"), '{"type":"Update\\qPosition"}',
            '{"type":"RequestPeerRefresh", "data": [1, 2}',
        ]
        self.each_invalid_json(cases)

    def test_duplicate_keys_are_invalid_json(self):
        cid = self.cid("dup")
        cases = [
            '{"type":"UpdatePosition","type":"UpdatePosition","data":'
            '{"client_id":"%s","map_id":1,"x":0,"y":0}}' % cid,
            '{"type":"UpdatePosition","data":{"client_id":"%s","map_id":1,"x":0,"y":0},'
            '"data":{"client_id":"%s","map_id":1,"x":0,"y":0}}' % (cid, cid),
            '{"type":"UpdatePosition","data":{"client_id":"%s","client_id":"%s","map_id":1,'
            '"x":0,"y":0}}' % (cid, cid),
            '{"type":"UpdatePosition","data":{"client_id":"%s","map_id":1,"x":0,"x":1,"y":0}}' % cid,
            '{"type":"UpdatePosition","data":{"client_id":"%s","map_id":1,"x":0,"y":0,'
            '"extra":{"k":1,"k":2}}}' % cid,
            # an escaped spelling of the same key is the same key
            '{"type":"UpdatePosition","data":{"client_id":"%s","map_id":1,"x":0,"\\u0078":0,'
            '"y":0}}' % cid,
        ]
        self.each_invalid_json(cases)

    def test_top_level_not_an_object(self):
        ws = self.connect()
        for text in ['[]', '[{"type":"RequestPeerRefresh"}]', '"UpdatePosition"', '42', '-1.5',
                     'null', 'true', 'false']:
            with self.subTest(text=text):
                self.send_expect(ws, text, NOT_OBJECT)
        self.assert_still_works(ws)

    def test_type_missing_or_not_a_string(self):
        ws = self.connect()
        for text in ['{}', '{"data":{}}', '{"Type":"UpdatePosition"}', '{"type":42}',
                     '{"type":null}', '{"type":true}', '{"type":["UpdatePosition"]}',
                     '{"type":{"name":"UpdatePosition"}}']:
            with self.subTest(text=text):
                self.send_expect(ws, text, BAD_TYPE)
        self.assert_still_works(ws)

    def test_unknown_type(self):
        ws = self.connect()
        for name in ["Foo", "updateposition", "UpdatePosition ", "NearbyPeers", "Error",
                     "ReceiveOffer", "", "h\u00e9llo"]:
            with self.subTest(name=name):
                ws.send_json({"type": name, "data": {}})
                self.expect_error(ws, "Unknown message type: %s" % name)
        self.assert_still_works(ws)

    def test_escaped_names_and_unknown_fields(self):
        """JSON escapes in keys and values decode before matching; unknown fields anywhere
        are ignored."""
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0)
        b_id = self.cid("b")
        b = self.connect()
        b.send_text('{"t\\u0079pe":"Update\\u0050osition","extra_top":{"nested":[1,{"z":null}]},'
                    '"data":{"client_id":"%s","map_id":%d,"\\u0078":3,"y":4,"channel":0,'
                    '"unknown":"field","speed":1.5,"sender_id":"x"},"zzz":[]}' % (b_id, m))
        self.expect_matched(b, b_id, a, a_id)
        b.send_text('{"type":"RequestPeerRefresh","data":null}  \n')
        self.expect_peers(b, [a_id])
        self.expect_nothing(a, b)

    def test_unknown_fields_with_any_json_value_are_ignored(self):
        """Numbers no C type holds are still valid JSON; in an unknown field they are
        ignored like any other value."""
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0)
        for i, value in enumerate(["123456789012345678901234567890", "-99999999999999999999",
                                   "1e400", "1.5e-400", "0.1", "[1e999, {}]"]):
            with self.subTest(value=value):
                b_id = self.cid("b%d" % i)
                b = self.connect()
                b.send_text('{"type":"UpdatePosition","big":%s,"data":{"client_id":"%s",'
                            '"map_id":%d,"x":1,"y":1,"huge":%s}}' % (value, b_id, m, value))
                self.expect_matched(b, b_id, a, a_id)
                b.send_text('{"type":"RequestPeerRefresh","data":%s}' % value)
                self.expect_peers(b, [a_id])
                b.close()
                self.expect_peers(a, [])

    # ---------------------------------------------------------------- data
    def test_data_not_an_object(self):
        for type_ in DATA_TYPES:
            ws = self.connect()
            with self.subTest(type=type_):
                for data in [OMIT, None, [], "x", 1, True, [valid_data(type_)]]:
                    ws.send_msg(type_, data)
                    self.expect_error(ws, data_error(type_))
                self.assert_still_works(ws)

    def test_missing_fields(self):
        for type_ in DATA_TYPES:
            for field in list(valid_data(type_)):
                if field in ("channel", "game_id"):
                    continue  # optional
                with self.subTest(type=type_, field=field):
                    ws = self.connect()
                    data = valid_data(type_, client_id=self.cid("m"))
                    del data[field]
                    ws.send_msg(type_, data)
                    self.expect_error(ws, missing_error(type_, field))
                    self.assert_unregistered(ws)
                    ws.close()

    def test_optional_fields_may_be_absent(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0, channel=OMIT, game_id=OMIT)
        # absent means 0: explicit zeros match
        b = self.join(b_id, m, 1, 1, channel=0, game_id=0, expect=[a_id])
        self.expect_peers(a, [b_id])
        self.expect_nothing(a, b)

    def test_bad_integers(self):
        for field in INT_FIELDS:
            ws = self.connect()
            with self.subTest(field=field):
                for token in BAD_INT_TOKENS:
                    ws.send_text(position_text(**{field: token}))
                    self.expect_error(ws, int_error("UpdatePosition", field))
                self.assert_still_works(ws)

    def test_integer_extremes_and_negative_zero_accepted(self):
        m = self.new_map()
        obs_id = self.cid("obs")
        obs = self.join(obs_id, m, 0, 0)
        a_id = self.cid("a")
        a = self.connect()
        # -0 is 0: a lands exactly on the observer
        a.send_text(position_text(client_id=json.dumps(a_id), map_id=str(m), x="-0", y="-0",
                                  channel="-0", game_id="-0"))
        self.expect_matched(a, a_id, obs, obs_id)
        for tokens in [dict(x="2147483647", y="-2147483648"),
                       dict(channel="2147483647", game_id="-2147483648"),
                       dict(map_id="-2147483648"), dict(map_id="2147483647")]:
            with self.subTest(tokens=tokens):
                ws = self.connect()
                fields = dict(client_id=json.dumps(self.cid("x%d" % len(self._conns))),
                              map_id=str(m))
                fields.update(tokens)
                ws.send_text(position_text(**fields))
                msg = ws.recv_json()
                self.assertEqual(msg, {"type": "NearbyPeers", "data": []})
        self.expect_nothing(obs, a)

    def test_bad_strings(self):
        cases = [("UpdatePosition", "client_id")]
        for type_, field in RELAYS.items():
            cases += [(type_, "target_id"), (type_, field)]
        sender = self.join(self.cid("s"), self.new_map(), 0, 0)
        fresh = self.connect()
        for type_, field in cases:
            with self.subTest(type=type_, field=field):
                ws = fresh if type_ == "UpdatePosition" else sender
                for value in BAD_STRING_VALUES:
                    data = valid_data(type_, client_id=self.cid("bs"))
                    data[field] = value
                    ws.send_msg(type_, data)
                    self.expect_error(ws, string_error(type_, field))
        self.assert_unregistered(fresh)
        self.expect_nothing(sender)

    def test_null_optional_ints(self):
        ws = self.connect()
        for field in ("channel", "game_id"):
            with self.subTest(field=field):
                data = valid_data("UpdatePosition", client_id=self.cid("n"))
                data[field] = None
                ws.send_msg("UpdatePosition", data)
                self.expect_error(ws, int_error("UpdatePosition", field))
        self.assert_still_works(ws)

    def test_bad_client_ids(self):
        ws = self.connect()
        for bad in BAD_IDS:
            with self.subTest(client_id=bad):
                data = valid_data("UpdatePosition", client_id=bad)
                ws.send_msg("UpdatePosition", data)
                self.expect_error(ws, id_error("UpdatePosition", "client_id"))
        self.assert_still_works(ws)

    def test_lone_surrogate_client_id_rejected(self):
        ws = self.connect()
        ws.send_text('{"type":"UpdatePosition","data":{"client_id":"a\\ud800b","map_id":1,'
                     '"x":0,"y":0}}')
        msg = ws.recv_json()
        self.assertEqual(msg.get("type"), "Error", msg)
        self.assertTrue(msg["data"].startswith("Invalid JSON: ") or
                        msg["data"] == id_error("UpdatePosition", "client_id"), msg)
        self.assert_still_works(ws)

    def test_good_client_ids_round_trip(self):
        m = self.new_map()
        obs_id = self.cid("obs")
        obs = self.join(obs_id, m, 0, 0)
        for good in GOOD_IDS:
            with self.subTest(client_id=good):
                ws = self.connect()
                self.assertEqual(self.register(ws, good, m, 1, 1), [obs_id])
                self.expect_peers(obs, [good])
                ws.close()
                self.expect_peers(obs, [])

    def test_bad_target_ids(self):
        sender = self.join(self.cid("s"), self.new_map(), 0, 0)
        for type_ in RELAYS:
            with self.subTest(type=type_):
                for bad in BAD_IDS:
                    sender.send_msg(type_, valid_data(type_, target_id=bad))
                    self.expect_error(sender, id_error(type_, "target_id"))
        # 128 bytes is a valid id: just an unknown one
        sender.send_msg("SendOffer", valid_data("SendOffer", target_id="t" * 128))
        self.expect_error(sender, "Client %s not found" % ("t" * 128))
        self.expect_nothing(sender)

    # -------------------------------------------------------- registration
    def test_messages_before_registration(self):
        ws = self.connect()
        other = self.join(self.cid("other"), self.new_map(), 0, 0)
        for type_ in ["RequestPeerRefresh", "SendOffer", "SendAnswer", "SendIceCandidate"]:
            with self.subTest(type=type_):
                data = None if type_ == "RequestPeerRefresh" else \
                    valid_data(type_, target_id=self.cid("other"))
                ws.send_msg(type_, data)
                self.expect_error(ws, NOT_REGISTERED)
        ws.send_json({"type": "RequestPeerRefresh"})
        self.expect_error(ws, NOT_REGISTERED)
        self.expect_nothing(other, ws)
        self.assert_still_works(ws)

    def test_malformed_before_registration_gets_parse_error(self):
        ws = self.connect()
        ws.send_msg("SendOffer", {"target_id": "x"})
        self.expect_error(ws, missing_error("SendOffer", "offer"))
        ws.send_msg("SendIceCandidate", {"target_id": "", "candidate": "c"})
        self.expect_error(ws, id_error("SendIceCandidate", "target_id"))
        ws.send_msg("SendAnswer", None)
        self.expect_error(ws, data_error("SendAnswer"))
        ws.send_msg("Bogus", None)
        self.expect_error(ws, "Unknown message type: Bogus")
        self.assert_still_works(ws)

    def test_failed_registration_leaves_connection_unregistered(self):
        m = self.new_map()
        obs = self.join(self.cid("obs"), m, 0, 0)
        ws = self.connect()
        ws.send_text(position_text(client_id=json.dumps(self.cid("a")), map_id=str(m), x="1.0"))
        self.expect_error(ws, int_error("UpdatePosition", "x"))
        self.assert_unregistered(ws)
        self.expect_nothing(obs)

    def test_disconnect_before_registration_closes(self):
        for data in [None, OMIT, {"x": 1}, "junk"]:
            with self.subTest(data=data):
                ws = self.connect()
                ws.send_msg("Disconnect", data)
                self.assertEqual(ws.expect_close(), 1000)

    def test_client_id_cannot_change(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 100, 0)
        # a tries to become "z" next to b: ignored, b sees nothing
        self.move(a, self.cid("z"), m, 100, 0)
        self.expect_error(a, "client_id cannot change on a connection (registered as %s)" % a_id)
        self.expect_nothing(a, b)
        self.refresh(b)
        self.expect_peers(b, [])
        b.send_msg("SendOffer", {"target_id": self.cid("z"), "offer": "o"})
        self.expect_error(b, "Client %s not found" % self.cid("z"))
        # the old id is still a's, and a can still move under it
        self.move(a, a_id, m, 90, 0)
        self.expect_matched(a, a_id, b, b_id)
        self.expect_nothing(a, b)

    def test_errors_change_no_state(self):
        m, a, b, a_id, b_id = self.matched_pair((0, 0), (10, 0))
        # each of these would move a away from b if applied
        a.send_text(position_text(client_id=json.dumps(a_id), map_id=str(m), x="1000",
                                  channel='"1"'))
        self.expect_error(a, int_error("UpdatePosition", "channel"))
        a.send_text(position_text(client_id=json.dumps(a_id), map_id=str(m + 1)).replace(
            '"y":0', '"y":0.5'))
        self.expect_error(a, int_error("UpdatePosition", "y"))
        a.send_text(position_text(client_id=json.dumps(a_id), map_id=str(m), x="1000",
                                  y=None))
        self.expect_error(a, missing_error("UpdatePosition", "y"))
        a.send_text('{"type":"UpdatePosition","data":{"client_id":"%s","map_id":%d,"x":1000,'
                    '"y":0,"x":1000}}' % (a_id, m))
        self.expect_error_prefix(a, "Invalid JSON: ")
        self.expect_nothing(a, b)
        self.refresh(a)
        self.expect_peers(a, [b_id])

    def test_refresh_and_disconnect_ignore_data(self):
        m, a, b, a_id, b_id = self.matched_pair((0, 0), (5, 5))
        for data in [None, OMIT, "junk", 5, [1, 2], {"x": 1, "client_id": "other"}, True]:
            with self.subTest(data=data):
                a.send_msg("RequestPeerRefresh", data)
                self.expect_peers(a, [b_id])
        self.expect_nothing(b)
        b.send_msg("Disconnect", {"client_id": a_id, "anything": [1]})
        self.assertEqual(b.expect_close(), 1000)
        self.expect_peers(a, [])
        self.expect_nothing(a)


if __name__ == "__main__":
    unittest.main()
