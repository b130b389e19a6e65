#pragma once
// The status page served at GET / (docs/http-api.md "Status page"): one
// self-contained HTML document (inline CSS and JavaScript, no external assets)
// that fetches the relative URL `status` every 5 s and renders it, so it works
// behind a path prefix. It inserts every value as text, never as markup. With
// AGENT_READ_AUTH it asks for the token and sends it as a bearer token.
//
// The text is agent/http/status_page.html, compiled in at build time
// (status_page.cmake). Serve it as `text/html; charset=utf-8`.

#include <string_view>

namespace pha::http {

// The whole page; static storage, valid for the life of the program.
std::string_view status_page_html();

}  // namespace pha::http
