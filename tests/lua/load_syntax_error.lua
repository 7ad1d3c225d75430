-- load_syntax_error.lua: line 3 does not parse.

function on_join(req) return nil ed
