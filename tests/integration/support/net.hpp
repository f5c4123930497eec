#pragma once
// Loopback networking for integration tests: free ports and a deliberately small, real
// HTTP/1.1 client over a POSIX socket (no Beast here: it is what the daemon uses, and the
// tests should see the bytes on the wire the way any other client would).

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::it {

/// A TCP port on 127.0.0.1 that was free a moment ago (bind :0, read it, close).
int free_port();

struct http_response {
    int status = 0;                              // 0: no response (see error)
    std::string reason;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;                            // de-chunked
    std::map<std::string, std::string> trailers; // of a chunked body, names lower-cased
    std::string error;                           // why there is no response
};

using http_headers = std::vector<std::pair<std::string, std::string>>;

/// One request on a fresh connection with `Connection: close`. Never throws: a refused
/// connection or a timeout gives status 0 and `error`.
http_response http_request(int port, std::string_view method, std::string_view target,
                           std::string_view body = {}, const http_headers& headers = {},
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));

inline http_response http_get(int port, std::string_view target,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return http_request(port, "GET", target, {}, {}, timeout);
}

/// One keep-alive HTTP/1.1 connection, kept open across requests (a client that never
/// reconnects): what a test needs to show that a server kept a connection through something.
/// Answers must carry Content-Length (the daemon's always do). Never throws.
class keep_alive_connection {
public:
    explicit keep_alive_connection(int port);
    ~keep_alive_connection();
    keep_alive_connection(const keep_alive_connection&) = delete;
    keep_alive_connection& operator=(const keep_alive_connection&) = delete;

    /// Sends one request on this connection and reads its answer; status 0 and `error` when the
    /// connection is gone (it is not reopened).
    http_response request(std::string_view method, std::string_view target, std::string_view body = {},
                          const http_headers& headers = {}, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// The connection's local port (the same one for every request while it stays open); 0 if none.
    int local_port() const { return local_port_; }
    bool open() const { return fd_ >= 0; }

private:
    int port_ = 0;
    int fd_ = -1;
    int local_port_ = 0;
    std::string in_;  // bytes read beyond the last answer
};

/// `s` in ASCII lower case (HTTP header names, error texts).
std::string lower(std::string s);

/// Percent-encodes one path segment or query value (RFC 3986 unreserved kept as is).
std::string url_encode(std::string_view text);

}  // namespace sluice::it
