"""Strings an attacker could put in a record's id, text, metadata or partition key, one per attack."""

HOSTILE_STRINGS = [
    "<script>window.__pwned=1</script>",  # a script tag
    "</script><script>window.__pwned=2</script>",  # closing the page's own script block
    "<img src=x onerror=window.__pwned=3>",  # an event handler
    "<svg/onload=window.__pwned=4>",
    '"><iframe src="javascript:window.__pwned=5">',  # breaking out of an attribute
    "[click me](javascript:window.__pwned=6)",  # a markdown link with a script URL
    "![tracker](http://evil.example/pixel.png)",  # a markdown image that would call out
    "| forged | cell |\n|---|---|",  # a markdown table row
    "**bold** _italic_ `code` # heading > quote",  # markdown formatting
    "\x1b[2J\x1b[31mANSI red\x1b[0m\x1b]0;window title\x07",  # terminal escape sequences
    "\u202eRTL override exe.txt",  # a bidi override
    "{{7*7}} ${7*7} <%= 7*7 %>",  # template expressions
    "'; DROP TABLE points; --",  # SQL
    "line\u2028separator\u2029paragraph",  # JavaScript line terminators
    "<!-- comment --> &amp; &lt;b&gt;",  # HTML comments and entities
    "../../../etc/passwd",  # a path
]
