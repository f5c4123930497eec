#include "integration/support/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sluice::it {

namespace {

struct fd_guard {
    int fd = -1;
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
};

sockaddr_in loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return std::string(s);
}

}  // namespace
std::string lower(std::string s);
namespace {

// Result of trying to decode a chunked body from what has been read so far.
enum class chunked_state { incomplete, complete, malformed };

chunked_state dechunk(std::string_view in, std::string& out, std::map<std::string, std::string>* trailers = nullptr) {
    out.clear();
    std::size_t pos = 0;
    for (;;) {
        auto eol = in.find("\r\n", pos);
        if (eol == std::string_view::npos) return chunked_state::incomplete;
        std::string size_line(in.substr(pos, eol - pos));
        auto semi = size_line.find(';');
        if (semi != std::string::npos) size_line.resize(semi);
        size_line = trim(size_line);
        if (size_line.empty()) return chunked_state::malformed;
        std::size_t size = 0;
        try {
            std::size_t used = 0;
            size = std::stoull(size_line, &used, 16);
            if (used != size_line.size()) return chunked_state::malformed;
        } catch (...) {
            return chunked_state::malformed;
        }
        pos = eol + 2;
        if (size == 0) {
            // Trailers end with an empty line.
            for (;;) {
                auto end = in.find("\r\n", pos);
                if (end == std::string_view::npos) return chunked_state::incomplete;
                if (end == pos) return chunked_state::complete;
                const std::string_view line = in.substr(pos, end - pos);
                if (const auto colon = line.find(':'); trailers != nullptr && colon != std::string_view::npos)
                    (*trailers)[lower(std::string(line.substr(0, colon)))] = trim(line.substr(colon + 1));
                pos = end + 2;
            }
        }
        if (in.size() < pos + size + 2) return chunked_state::incomplete;
        out.append(in.substr(pos, size));
        if (in.substr(pos + size, 2) != "\r\n") return chunked_state::malformed;
        pos += size + 2;
    }
}

}  // namespace

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

int free_port() {
    fd_guard s{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (s.fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    auto addr = loopback(0);
    if (::bind(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
    }
    socklen_t len = sizeof addr;
    if (::getsockname(s.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        throw std::runtime_error(std::string("getsockname: ") + std::strerror(errno));
    }
    return ntohs(addr.sin_port);
}

http_response http_request(int port, std::string_view method, std::string_view target, std::string_view body,
                           const http_headers& headers, std::chrono::milliseconds timeout) {
    http_response res;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto remaining_ms = [&] {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        return static_cast<int>(std::max<std::int64_t>(0, left.count()));
    };

    fd_guard s{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
    if (s.fd < 0) {
        res.error = std::string("socket: ") + std::strerror(errno);
        return res;
    }
    auto addr = loopback(port);
    if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        if (errno != EINPROGRESS) {
            res.error = std::string("connect: ") + std::strerror(errno);
            return res;
        }
        pollfd p{s.fd, POLLOUT, 0};
        if (::poll(&p, 1, remaining_ms()) <= 0) {
            res.error = "connect: timeout";
            return res;
        }
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            res.error = std::string("connect: ") + std::strerror(err);
            return res;
        }
    }

    std::string req;
    req.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
    req.append("Host: 127.0.0.1:").append(std::to_string(port)).append("\r\n");
    req.append("Connection: close\r\n");
    bool has_type = false;
    for (const auto& [name, value] : headers) {
        if (lower(name) == "content-type") has_type = true;
        req.append(name).append(": ").append(value).append("\r\n");
    }
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
        if (!has_type) req.append("Content-Type: application/json\r\n");
        req.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    }
    req.append("\r\n").append(body);

    std::size_t sent = 0;
    while (sent < req.size()) {
        ssize_t n = ::send(s.fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd p{s.fd, POLLOUT, 0};
            if (::poll(&p, 1, remaining_ms()) <= 0) {
                res.error = "send: timeout";
                return res;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        // The server may answer (e.g. 413) and close before reading everything: go read.
        break;
    }

    std::string in;
    std::size_t header_end = std::string::npos;
    bool chunked = false;
    bool has_length = false;
    std::size_t content_length = 0;
    bool no_body = false;
    bool closed = false;
    for (;;) {
        if (header_end == std::string::npos) {
            header_end = in.find("\r\n\r\n");
            if (header_end != std::string::npos) {
                std::string_view head(in.data(), header_end);
                auto line_end = head.find("\r\n");
                std::string_view status_line = head.substr(0, line_end);
                // "HTTP/1.1 200 OK"
                auto sp1 = status_line.find(' ');
                if (status_line.substr(0, 5) != "HTTP/" || sp1 == std::string_view::npos) {
                    res.error = "malformed status line: " + std::string(status_line);
                    return res;
                }
                auto sp2 = status_line.find(' ', sp1 + 1);
                std::string code(status_line.substr(sp1 + 1, sp2 == std::string_view::npos ? std::string_view::npos
                                                                                            : sp2 - sp1 - 1));
                try {
                    res.status = std::stoi(code);
                } catch (...) {
                    res.error = "malformed status line: " + std::string(status_line);
                    return res;
                }
                if (sp2 != std::string_view::npos) res.reason = std::string(status_line.substr(sp2 + 1));
                std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
                while (pos < head.size()) {
                    auto e = head.find("\r\n", pos);
                    if (e == std::string_view::npos) e = head.size();
                    std::string_view line = head.substr(pos, e - pos);
                    auto colon = line.find(':');
                    if (colon != std::string_view::npos) {
                        std::string name = lower(std::string(line.substr(0, colon)));
                        std::string value = trim(line.substr(colon + 1));
                        auto [it, inserted] = res.headers.emplace(name, value);
                        if (!inserted) it->second += ", " + value;
                    }
                    pos = e + 2;
                }
                if (auto it = res.headers.find("transfer-encoding"); it != res.headers.end()) {
                    chunked = lower(it->second).find("chunked") != std::string::npos;
                }
                if (auto it = res.headers.find("content-length"); it != res.headers.end() && !chunked) {
                    try {
                        content_length = std::stoull(it->second);
                        has_length = true;
                    } catch (...) {
                        res.error = "malformed Content-Length: " + it->second;
                        res.status = 0;
                        return res;
                    }
                }
                no_body = method == "HEAD" || res.status == 204 || res.status == 304 ||
                          (res.status >= 100 && res.status < 200);
            }
        }
        if (header_end != std::string::npos) {
            std::string_view rest(in.data() + header_end + 4, in.size() - header_end - 4);
            if (no_body) {
                return res;
            }
            if (chunked) {
                std::string decoded;
                auto st = dechunk(rest, decoded, &res.trailers);
                if (st == chunked_state::complete) {
                    res.body = std::move(decoded);
                    return res;
                }
                if (st == chunked_state::malformed) {
                    res.error = "malformed chunked body";
                    res.status = 0;
                    return res;
                }
            } else if (has_length && rest.size() >= content_length) {
                res.body = std::string(rest.substr(0, content_length));
                return res;
            } else if (!has_length && closed) {
                res.body = std::string(rest);
                return res;
            }
        }
        if (closed) {
            res.error = header_end == std::string::npos ? "connection closed before the response headers"
                                                        : "connection closed before the end of the body";
            res.status = 0;
            return res;
        }
        pollfd p{s.fd, POLLIN, 0};
        int pr = ::poll(&p, 1, remaining_ms());
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) {
            res.error = "read: timeout";
            res.status = 0;
            return res;
        }
        char buf[16384];
        ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
        if (n > 0) {
            in.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0) {
            closed = true;
        } else if (errno == ECONNRESET) {
            closed = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            res.error = std::string("recv: ") + std::strerror(errno);
            res.status = 0;
            return res;
        }
    }
}

std::string url_encode(std::string_view text) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

keep_alive_connection::keep_alive_connection(int port) : port_(port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    auto addr = loopback(port);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd_);
        fd_ = -1;
        return;
    }
    sockaddr_in local{};
    socklen_t len = sizeof local;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) == 0) local_port_ = ntohs(local.sin_port);
}

keep_alive_connection::~keep_alive_connection() {
    if (fd_ >= 0) ::close(fd_);
}

http_response keep_alive_connection::request(std::string_view method, std::string_view target, std::string_view body,
                                             const http_headers& headers, std::chrono::milliseconds timeout) {
    http_response res;
    if (fd_ < 0) {
        res.error = "the connection is closed";
        return res;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string req;
    req.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
    req.append("Host: 127.0.0.1:").append(std::to_string(port_)).append("\r\n");
    for (const auto& [name, value] : headers) req.append(name).append(": ").append(value).append("\r\n");
    if (!body.empty() || method == "POST")
        req.append("Content-Type: application/json\r\nContent-Length: ").append(std::to_string(body.size())).append("\r\n");
    req.append("\r\n").append(body);
    for (std::size_t sent = 0; sent < req.size();) {
        const ssize_t n = ::send(fd_, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
        if (n <= 0 && errno == EINTR) continue;
        if (n <= 0) {
            res.error = std::string("send: ") + std::strerror(errno);
            ::close(fd_);
            fd_ = -1;
            return res;
        }
        sent += static_cast<std::size_t>(n);
    }
    for (;;) {
        const auto header_end = in_.find("\r\n\r\n");
        if (header_end != std::string::npos) {
            const std::string head = in_.substr(0, header_end);
            std::size_t length = 0;
            std::size_t pos = head.find("\r\n");
            const std::string status_line = head.substr(0, pos);
            const auto sp = status_line.find(' ');
            res.status = sp == std::string::npos ? 0 : std::atoi(status_line.c_str() + sp + 1);
            while (pos != std::string::npos && pos < head.size()) {
                const auto e = head.find("\r\n", pos + 2);
                const std::string line = head.substr(pos + 2, (e == std::string::npos ? head.size() : e) - pos - 2);
                const auto colon = line.find(':');
                if (colon != std::string::npos) {
                    const std::string name = lower(line.substr(0, colon));
                    const std::string value = trim(line.substr(colon + 1));
                    res.headers[name] = value;
                    if (name == "content-length") length = std::stoull(value);
                }
                pos = e;
            }
            if (in_.size() >= header_end + 4 + length) {
                res.body = in_.substr(header_end + 4, length);
                in_.erase(0, header_end + 4 + length);
                if (lower(res.headers["connection"]) == "close") {
                    ::close(fd_);
                    fd_ = -1;
                }
                return res;
            }
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            res = {};
            res.error = "read: timeout";
            return res;
        }
        char buf[16384];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) {
            res = {};
            res.error = n == 0 ? "the server closed the connection" : std::string("recv: ") + std::strerror(errno);
            ::close(fd_);
            fd_ = -1;
            return res;
        }
        in_.append(buf, static_cast<std::size_t>(n));
    }
}

}  // namespace sluice::it
