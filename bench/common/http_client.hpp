#pragma once
// A small blocking HTTP/1.1 client for the benchmark programs: one keep-alive connection to a
// loopback address, requests written whole, answers read by Content-Length. Not a general
// client (no chunked answers, no TLS): the daemon and the reference servers answer with a length.
// Owned and used by one thread.

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::bench {

/// "http://127.0.0.1:8080/x/y" → host "127.0.0.1", port 8080, path "/x/y".
struct url_parts {
    std::string host;
    int port = 0;
    std::string path;
};
bool parse_url(std::string_view url, url_parts& out);

struct http_answer {
    int status = 0;         // 0: the request failed (connect, write, read or parse)
    std::string body;
    std::string error;      // why, when status is 0
};

class http_connection {
public:
    http_connection(std::string host, int port);
    ~http_connection();
    http_connection(const http_connection&) = delete;
    http_connection& operator=(const http_connection&) = delete;

    /// Sends one request (reconnecting if the previous connection closed) and reads its answer.
    /// `timeout_ms` bounds each socket wait.
    http_answer request(std::string_view method, std::string_view path, std::string_view body = {},
                        std::string_view content_type = "application/json", int timeout_ms = 10000);
    void close();

private:
    bool connect_(int timeout_ms, std::string& error);
    bool wait_(short events, int timeout_ms);

    std::string host_;
    int port_;
    int fd_ = -1;
    std::string out_;
    std::string in_;
};

/// GET (or POST) once on a fresh connection; convenience for scripts and polling.
http_answer http_fetch(const std::string& url, std::string_view method = "GET", std::string_view body = {},
                       std::string_view content_type = "application/json", int timeout_ms = 5000);

}  // namespace sluice::bench
