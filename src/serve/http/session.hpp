#pragma once
// One HTTP/1.1 connection, over plain TCP or TLS (the same logic over either stream type).
// Owned by shared_ptrs held in its pending asynchronous operations (and, while a handler works,
// by that handler's responder). Every member function runs on the connection's strand, except
// close_now(), which the server calls after joining the io threads. Instantiated in session.cpp
// for plain_stream and tls_stream only.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "exchange.hpp"
#include "server_state.hpp"

namespace sluice::serve {

namespace beast = boost::beast;
using tcp = net::ip::tcp;

using plain_stream = beast::basic_stream<tcp, io_executor>;
using tls_stream = beast::ssl_stream<plain_stream>;

template <class Stream>
class session final : public connection, public std::enable_shared_from_this<session<Stream>> {
public:
    /// For tls_stream, state->tls must be set. ioc is the io_context the socket belongs to (run
    /// by one thread); answers computed on other threads are posted to it.
    session(io_socket&& socket, const std::shared_ptr<net::io_context>& ioc, std::shared_ptr<server_state> state);
    ~session() override;
    session(const session&) = delete;
    session& operator=(const session&) = delete;

    /// Registers the session and starts it (TLS: the handshake, then the first request).
    void run();
    void close_now() override;

private:
    static constexpr bool is_tls = !std::is_same_v<Stream, plain_stream>;

    plain_stream& tcp_layer() { return beast::get_lowest_layer(stream_); }
    void start();
    void on_handshake(beast::error_code ec);
    void read_request();
    void on_header(beast::error_code ec, std::size_t bytes);
    void on_continue_written(beast::error_code ec, std::size_t bytes);
    void read_body();
    void on_body(beast::error_code ec, std::size_t bytes);
    void on_read_error(beast::error_code ec);
    void handle_request();
    void send_response(response res);
    void fail(http::status status, const char* code, const std::string& message);
    void observe(std::string_view route, http::verb method, unsigned status);
    void write(response res, bool close);
    void consume_unsent(std::size_t bytes);
    void write_unsent(bool close);
    void on_write(bool close, beast::error_code ec, std::size_t bytes);
    void wait_next_request();
    void on_first_byte(beast::error_code ec, std::size_t bytes);
    void linger();
    void read_linger();
    void on_linger(beast::error_code ec, std::size_t bytes);
    void on_tls_shutdown(beast::error_code ec);
    // A streamed exchange (dispatcher::streamed): the body read into ex_ as it arrives, the answer
    // written from ex_'s queue.
    void start_exchange(bool body_streams);
    void read_streamed_body();
    void on_streamed_body(beast::error_code ec, std::size_t bytes);
    void pump_exchange();
    void end_exchange(bool broken);

    Stream stream_;
    std::weak_ptr<net::io_context> ioc_;
    beast::flat_buffer buffer_;
    std::shared_ptr<server_state> state_;
    std::shared_ptr<const server_generation> gen_;  // the current request's (state_->current() when it began)
    std::string request_id_;  // the current request's X-Request-Id
    std::string peer_;  // the remote address's bytes: the rate limit's client without an API key
    std::optional<server_state::registry_entry> registered_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::optional<http::response<http::empty_body>> continue_;
    std::optional<response> res_;
    std::string head_;  // res_'s status line and fields, written before its body
    std::array<net::const_buffer, 2> unsent_;  // what of head_ and res_'s body is not written yet
    std::optional<response> inline_answer_;  // answered while dispatch() ran on this thread
    std::uint64_t request_bytes_ = 0;  // bytes of the current request consumed by the parser
    std::uint64_t linger_bytes_ = 0;
    bool keep_alive_ = false;
    bool streamed_route_ = false;  // the current request goes to a streamed route (on_header)
    unsigned version_ = 11;
    std::string_view route_ = unmatched_route;  // the answering route's pattern, for metrics
    http::verb method_ = http::verb::unknown;
    std::chrono::steady_clock::time_point started_;
    std::shared_ptr<stream_exchange> ex_;  // the current streamed exchange, if any
    std::string ex_out_;                   // what of ex_'s answer is being written
    bool ex_writing_ = false, ex_last_ = false;
    bool reading_ = false;            // a read of a streamed body is in flight
    bool linger_after_read_ = false;  // the answer is written: linger once that read completes
};

}  // namespace sluice::serve

namespace sluice::serve {

// Defined in session.cpp: the only two stream types, and how each is built from a socket.
template <>
session<plain_stream>::session(io_socket&& socket, const std::shared_ptr<net::io_context>& ioc,
                               std::shared_ptr<server_state> state);
template <>
session<tls_stream>::session(io_socket&& socket, const std::shared_ptr<net::io_context>& ioc,
                             std::shared_ptr<server_state> state);
extern template class session<plain_stream>;
extern template class session<tls_stream>;

}  // namespace sluice::serve
