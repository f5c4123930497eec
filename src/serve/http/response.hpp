#pragma once
// Response helpers shared by the session, the dispatcher and the handlers: JSON bodies,
// the error envelope of the README's API, and the one logger of the HTTP module.

#include <memory>
#include <string>
#include <string_view>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>

namespace spdlog {
class logger;
}

namespace sluice::serve {

namespace http = boost::beast::http;

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;
using ordered_json = nlohmann::ordered_json;

/// Serialises JSON for the wire; invalid UTF-8 in stored data is replaced, never thrown on.
std::string dump_json(const ordered_json& j);

/// A response with a JSON body and Content-Type application/json. Version, keep-alive,
/// Server and Content-Length are filled in by the session when it writes the response.
response json_response(http::status status, const ordered_json& body);

/// {"error":{"code":"<code>","message":"<message>"}} with the given status.
response error_response(http::status status, std::string_view code, std::string_view message);

/// A header value without the optional whitespace (spaces, tabs) HTTP allows around it.
std::string_view trim_ows(std::string_view s);

/// The module's logger: spdlog's "http" logger if the app registered one, else the default.
std::shared_ptr<spdlog::logger> http_logger();

}  // namespace sluice::serve
