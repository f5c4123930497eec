#pragma once
// A plain synchronous Beast HTTP client for wire tests: it sends exactly the bytes a test asks
// for and reports exactly what came back. A watchdog shuts the socket down if a read takes too
// long, so a broken server fails a test instead of hanging it.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace sluice::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

class socket_watchdog {
public:
    socket_watchdog(tcp::socket& socket, std::chrono::milliseconds limit)
        : fd_(socket.native_handle()), thread_([this, limit] {
              std::unique_lock lock(mutex_);
              if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
                  fired_ = true;
                  ::shutdown(fd_, SHUT_RDWR);
              }
          }) {}
    ~socket_watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    socket_watchdog(const socket_watchdog&) = delete;
    socket_watchdog& operator=(const socket_watchdog&) = delete;

private:
    int fd_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    bool fired_ = false;
    std::thread thread_;
};

class wire_client {
public:
    using response = http::response<http::string_body>;

    /// receive_buffer_bytes > 0 sets SO_RCVBUF before connecting: a small window that does not
    /// grow, so how much of an answer the client can hold unread stays small.
    explicit wire_client(std::uint16_t port, int receive_buffer_bytes = 0) : socket_(ioc_) {
        if (receive_buffer_bytes > 0) {
            socket_.open(tcp::v4());
            socket_.set_option(net::socket_base::receive_buffer_size(receive_buffer_bytes));
        }
        socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    }

    /// False once the connection is gone.
    bool send_raw(std::string_view bytes) {
        beast::error_code ec;
        net::write(socket_, net::buffer(bytes.data(), bytes.size()), ec);
        return !ec;
    }

    void send(http::verb method, std::string_view target, const std::vector<std::pair<std::string, std::string>>& headers = {},
              std::string body = {}) {
        http::request<http::string_body> req{method, target, 11};
        req.set(http::field::host, "127.0.0.1");
        for (const auto& [name, value] : headers) req.set(name, value);
        req.body() = std::move(body);
        if (!req.body().empty() || method == http::verb::post) req.prepare_payload();
        beast::error_code ec;
        http::write(socket_, req, ec);
    }

    /// One response, or nullopt if the connection ended first.
    std::optional<response> read(std::chrono::milliseconds limit = 5000ms) {
        socket_watchdog watchdog(socket_, limit);
        http::response_parser<http::string_body> parser;
        parser.body_limit(16 * 1024 * 1024);
        beast::error_code ec;
        http::read(socket_, buffer_, parser, ec);
        if (ec) return std::nullopt;
        return parser.release();
    }

    /// One response read like a slow client: at most chunk_bytes per read, with a pause after
    /// each. Nullopt if the connection ended or limit passed before the response was whole.
    std::optional<response> read_slowly(std::size_t chunk_bytes, std::chrono::microseconds pause,
                                        std::chrono::milliseconds limit, std::uint64_t body_limit) {
        socket_watchdog watchdog(socket_, limit);
        http::response_parser<http::string_body> parser;
        parser.body_limit(body_limit);
        parser.eager(true);
        for (;;) {
            while (buffer_.size() > 0 && !parser.is_done()) {
                beast::error_code ec;
                const std::size_t used = parser.put(buffer_.data(), ec);
                buffer_.consume(used);
                if (ec == http::error::need_more || (!ec && used == 0)) break;
                if (ec) return std::nullopt;
            }
            if (parser.is_done()) return parser.release();
            beast::error_code ec;
            const std::size_t n = socket_.read_some(buffer_.prepare(chunk_bytes), ec);
            if (ec) return std::nullopt;
            buffer_.commit(n);
            std::this_thread::sleep_for(pause);
        }
    }

    /// Sends a request and reads its response on this (keep-alive) connection.
    std::optional<response> request(http::verb method, std::string_view target,
                                     const std::vector<std::pair<std::string, std::string>>& headers = {},
                                     std::string body = {}) {
        send(method, target, headers, std::move(body));
        return read();
    }

    /// Whether the server has ended the connection (reset or closed its side), seen from the
    /// socket's TCP state without reading anything: reading would count as progress.
    bool ended_by_server() {
        tcp_info info{};
        socklen_t len = sizeof info;
        if (getsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return true;
        return info.tcpi_state != TCP_ESTABLISHED;
    }

    struct close_report {
        bool closed = false;                // the server ended the connection within the limit
        std::size_t bytes = 0;              // what it sent before that
        std::chrono::milliseconds after{0};  // how long that took
    };
    /// Reads until the server closes the connection (EOF or reset) or limit passes.
    close_report wait_for_close(std::chrono::milliseconds limit = 5000ms) {
        close_report r;
        r.bytes = buffer_.size();
        const auto start = std::chrono::steady_clock::now();
        socket_watchdog watchdog(socket_, limit);
        char chunk[4096];
        for (;;) {
            beast::error_code ec;
            const std::size_t n = socket_.read_some(net::buffer(chunk), ec);
            r.bytes += n;
            if (ec) break;
        }
        r.after = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
        r.closed = r.after < limit;
        return r;
    }

private:
    net::io_context ioc_;
    tcp::socket socket_;
    beast::flat_buffer buffer_;
};

}  // namespace sluice::testing
