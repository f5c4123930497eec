#include "http_client.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <strings.h>

namespace sluice::bench {

bool parse_url(std::string_view url, url_parts& out) {
    constexpr std::string_view scheme = "http://";
    if (url.substr(0, scheme.size()) != scheme) return false;
    url.remove_prefix(scheme.size());
    const auto slash = url.find('/');
    std::string_view authority = url.substr(0, slash);
    out.path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
    const auto colon = authority.rfind(':');
    if (colon == std::string_view::npos) return false;
    out.host = std::string(authority.substr(0, colon));
    out.port = std::atoi(std::string(authority.substr(colon + 1)).c_str());
    return out.port > 0;
}

http_connection::http_connection(std::string host, int port) : host_(std::move(host)), port_(port) {}

http_connection::~http_connection() { close(); }

void http_connection::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    in_.clear();
}

bool http_connection::wait_(short events, int timeout_ms) {
    pollfd p{fd_, events, 0};
    for (;;) {
        const int n = ::poll(&p, 1, timeout_ms);
        if (n > 0) return true;
        if (n == 0) return false;
        if (errno != EINTR) return false;
    }
}

bool http_connection::connect_(int timeout_ms, std::string& error) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        error = std::string("socket: ") + std::strerror(errno);
        return false;
    }
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    if (::inet_pton(AF_INET, host_.c_str(), &addr.sin_addr) != 1) {
        error = "bad IPv4 address " + host_;
        close();
        return false;
    }
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
        error = std::string("connect: ") + std::strerror(errno);
        close();
        return false;
    }
    if (!wait_(POLLOUT, timeout_ms)) {
        error = "connect: timed out";
        close();
        return false;
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (so_error != 0) {
        error = std::string("connect: ") + std::strerror(so_error);
        close();
        return false;
    }
    return true;
}

namespace {

// Case-insensitive search for a header's value in the head of an answer.
bool header_value(std::string_view head, std::string_view name, std::string_view& value) {
    std::size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos + 2 < head.size()) {
        const std::size_t start = pos + 2;
        const std::size_t end = head.find("\r\n", start);
        std::string_view line = head.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
        if (line.size() > name.size() && line[name.size()] == ':' &&
            ::strncasecmp(line.data(), name.data(), name.size()) == 0) {
            value = line.substr(name.size() + 1);
            while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
            return true;
        }
        pos = end;
    }
    return false;
}

}  // namespace

http_answer http_connection::request(std::string_view method, std::string_view path, std::string_view body,
                                     std::string_view content_type, int timeout_ms) {
    http_answer a;
    for (int attempt = 0; attempt < 2; ++attempt) {
        const bool fresh = fd_ < 0;
        if (fresh && !connect_(timeout_ms, a.error)) return a;
        out_.clear();
        out_.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ").append(host_);
        out_.append("\r\nConnection: keep-alive\r\n");
        if (!body.empty() || method == "POST") {
            out_.append("Content-Type: ").append(content_type).append("\r\nContent-Length: ");
            out_.append(std::to_string(body.size())).append("\r\n");
        }
        out_.append("\r\n").append(body);
        std::size_t sent = 0;
        bool failed = false;
        while (sent < out_.size()) {
            const ssize_t n = ::send(fd_, out_.data() + sent, out_.size() - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += static_cast<std::size_t>(n);
            } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (!wait_(POLLOUT, timeout_ms)) {
                    a.error = "write: timed out";
                    close();
                    return a;
                }
            } else {
                failed = true;
                break;
            }
        }
        // Read the head, then the body by Content-Length.
        std::size_t head_end = std::string::npos;
        std::size_t need = 0;
        char buf[65536];
        while (!failed) {
            if (head_end == std::string::npos) {
                head_end = in_.find("\r\n\r\n");
                if (head_end != std::string::npos) {
                    std::string_view head(in_.data(), head_end + 2);
                    std::string_view len;
                    if (!header_value(head, "Content-Length", len)) {
                        a.error = "answer without Content-Length";
                        close();
                        return a;
                    }
                    need = head_end + 4 + std::strtoull(std::string(len).c_str(), nullptr, 10);
                }
            }
            if (head_end != std::string::npos && in_.size() >= need) break;
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n > 0) {
                in_.append(buf, static_cast<std::size_t>(n));
            } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (!wait_(POLLIN, timeout_ms)) {
                    a.error = "read: timed out";
                    close();
                    return a;
                }
            } else {
                failed = true;
            }
        }
        if (failed) {
            close();
            // A kept-alive connection the server closed meanwhile: try once on a new one.
            if (!fresh) continue;
            a.error = "connection closed";
            return a;
        }
        if (in_.size() < 12 || in_.compare(0, 5, "HTTP/") != 0) {
            a.error = "not an HTTP answer";
            close();
            return a;
        }
        a.status = std::atoi(in_.c_str() + 9);
        a.body.assign(in_, head_end + 4, need - head_end - 4);
        std::string_view head(in_.data(), head_end + 2);
        std::string_view conn;
        const bool closing = header_value(head, "Connection", conn) && ::strncasecmp(conn.data(), "close", 5) == 0;
        in_.erase(0, need);
        if (closing) close();
        return a;
    }
    a.error = "connection closed";
    return a;
}

http_answer http_fetch(const std::string& url, std::string_view method, std::string_view body,
                       std::string_view content_type, int timeout_ms) {
    url_parts u;
    if (!parse_url(url, u)) return http_answer{0, {}, "bad URL " + url};
    http_connection c(u.host, u.port);
    return c.request(method, u.path, body, content_type, timeout_ms);
}

}  // namespace sluice::bench
