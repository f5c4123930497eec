#pragma once
// Which Asio io_context the calling thread runs, for code that does asynchronous I/O on the
// thread that asked (the Redis reads of the HTTP io threads) without knowing the HTTP server.

namespace boost::asio {
class io_context;
}

namespace sluice {

/// The io_context the calling thread runs when it is one of an HTTP server's io threads (each
/// runs one io_context alone), else nullptr.
boost::asio::io_context* current_io_context();

/// Set by an io thread when it starts running its io_context (nullptr when it stops).
void set_current_io_context(boost::asio::io_context* ioc);

}  // namespace sluice
