#pragma once
// One HTTP/1.1 connection. Owned by shared_ptrs held in its pending asynchronous operations
// (and, while a handler works, by that handler's responder). Every member function runs on the
// connection's strand, except close_now(), which the server calls after joining the io threads.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "server_state.hpp"

namespace sluice::serve {

namespace beast = boost::beast;
using tcp = net::ip::tcp;

class session : public std::enable_shared_from_this<session> {
public:
    session(tcp::socket&& socket, std::shared_ptr<server_state> state);
    ~session();
    session(const session&) = delete;
    session& operator=(const session&) = delete;

    /// Registers the session and starts reading the first request.
    void run();
    /// Closes the socket. Only while no io thread runs (server stop).
    void close_now();

private:
    void read_request();
    void on_header(beast::error_code ec, std::size_t bytes);
    void on_continue_written(beast::error_code ec, std::size_t bytes);
    void read_body();
    void on_body(beast::error_code ec, std::size_t bytes);
    void on_read_error(beast::error_code ec);
    void handle_request();
    void send_response(response res);
    void fail(http::status status, const char* code, const std::string& message);
    void write(response res, bool close);
    void on_write(bool close, beast::error_code ec, std::size_t bytes);
    void wait_next_request();
    void on_first_byte(beast::error_code ec, std::size_t bytes);
    void linger();
    void read_linger();
    void on_linger(beast::error_code ec, std::size_t bytes);

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::shared_ptr<server_state> state_;
    std::optional<server_state::registry_entry> registered_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::optional<http::response<http::empty_body>> continue_;
    std::optional<response> res_;
    std::uint64_t request_bytes_ = 0;  // bytes of the current request consumed by the parser
    std::uint64_t linger_bytes_ = 0;
    bool keep_alive_ = false;
    unsigned version_ = 11;
    std::chrono::steady_clock::time_point started_;
};

}  // namespace sluice::serve
