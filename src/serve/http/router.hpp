#pragma once
// The route table of the HTTP API: (method, path pattern with {params}) → handler.
// Built once by the server before the io threads start, then only read (no locking needed).

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/verb.hpp>

#include "response.hpp"
#include "sluice/serve/services.hpp"

namespace sluice::serve {

using string_pairs = std::vector<std::pair<std::string, std::string>>;

/// Percent-decodes %XX escapes; with plus_as_space ('+' in query strings) '+' becomes ' '.
/// nullopt when an escape is truncated or not hex.
std::optional<std::string> url_decode(std::string_view in, bool plus_as_space);

/// "a=1&b=x+y&c" → {{"a","1"},{"b","x y"},{"c",""}}, decoded, in order. nullopt on a bad escape.
std::optional<string_pairs> parse_query(std::string_view query);

/// Splits a request target into its path and query ("/a/b?x=1" → "/a/b", "x=1").
std::pair<std::string_view, std::string_view> split_target(std::string_view target);

/// What a handler sees of one request. Valid only for the duration of the handler call:
/// a handler that answers later copies what it needs.
struct request_context {
    const request& req;
    string_pairs params;        // path parameters, URL-decoded
    string_pairs query;         // query parameters, URL-decoded
    std::string api_key_name;   // the authenticated key's name; empty when auth is off
    std::string request_id = {};  // the X-Request-Id the answer carries
    std::string client = {};      // the remote address as text ("127.0.0.1", "::1")
    /// Whether the request's key also has this scope (true when auth is off); during the call only.
    std::function<bool(std::string_view)> has_scope = {};

    /// The path parameter, or an empty string if the pattern has none by that name.
    const std::string& param(std::string_view name) const;
    /// The first query parameter of that name, or nullptr.
    const std::string* query_value(std::string_view name) const;
};

/// Sends the response. Call exactly once, from any thread; later calls are ignored.
using responder = std::function<void(response)>;
using handler = std::function<void(const request_context&, responder)>;
/// A route whose answer is streamed (and whose body may be read as it arrives): the handler gets
/// the exchange instead of a responder (sluice/serve/services.hpp, answer_stream).
using stream_handler = std::function<void(const request_context&, std::shared_ptr<answer_stream>)>;

class router {
public:
    struct segment {
        std::string text;  // the literal, or the parameter's name
        bool is_param = false;
    };
    struct route {
        http::verb method = http::verb::get;
        std::string pattern;
        std::string scope;  // API key scope the route needs; empty = public
        handler fn;
        stream_handler stream_fn;  // set instead of fn for streamed routes
        std::vector<segment> segments;
    };
    struct match {
        enum class outcome { found, not_found, method_not_allowed, bad_path };
        outcome result = outcome::not_found;
        const route* matched = nullptr;
        string_pairs params;
        std::string allow;         // methods on this path, for 405: "GET, POST"
        bool public_path = false;  // some route on this path needs no scope
    };

    /// pattern: "/v1/features/{set}/{key}". Throws std::invalid_argument on a malformed pattern
    /// (start-up only).
    void add(http::verb method, std::string_view pattern, std::string scope, handler fn);
    /// A streamed route (add_training_routes); POST only (std::invalid_argument otherwise).
    void add_streamed(http::verb method, std::string_view pattern, std::string scope, stream_handler fn);

    /// Matches a path (no query string). Each segment is URL-decoded after splitting on '/',
    /// so a parameter may contain '/' written as %2F.
    match find(http::verb method, std::string_view path) const;

    const std::vector<route>& routes() const { return routes_; }

private:
    std::vector<route> routes_;
};

}  // namespace sluice::serve
