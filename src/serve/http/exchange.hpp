#pragma once
// The session's side of a streamed exchange (answer_stream, sluice/serve/services.hpp): the request
// body spooled to an unlinked temporary file as it arrives (so a client that sends everything
// before it reads never deadlocks against an answer that is already streaming), and the answer's
// bytes queued for the session to write. The producer (an export thread) blocks while more than
// max_unsent bytes wait; everything on the wire (a 100 Continue, the head, chunks, the last chunk
// with trailers, or a refusal) goes through one queue, so the session is its only writer.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "sluice/serve/services.hpp"

namespace sluice::serve {

class stream_exchange final : public answer_stream {
public:
    /// wake: asks the session's thread to call take() (posted; called with the lock not held).
    stream_exchange(std::string request_id, unsigned version, bool body_streams, std::function<void()> wake);
    ~stream_exchange() override;

    // The producer's side (any thread).
    result<std::size_t> read_body(char* buf, std::size_t cap) override;
    void refuse(unsigned status, std::string code, std::string message) override;
    void begin(std::string content_type, std::vector<std::pair<std::string, std::string>> headers,
               std::vector<std::string> trailers) override;
    bool write(std::string_view bytes) override;
    void finish(std::vector<std::pair<std::string, std::string>> trailers) override;
    void abort(const std::string& why) override;

    // The session's side (its thread).
    /// Appends request body bytes to the spool.
    status body_bytes(std::string_view bytes);
    void body_end();
    void body_failed(std::string message, error_kind kind);
    /// The connection is gone: write() returns false, read_body() fails, from now on.
    void gone();
    /// Queues "100 Continue" first when nothing has been answered yet (Expect: 100-continue).
    void continue_first();
    struct pending {
        std::string bytes;
        bool last = false;    // the answer ends with these bytes
        bool broken = false;  // abort(): close the connection without writing more
    };
    /// What waits to be written (the session writes it, then calls sent()).
    pending take();
    void sent(std::size_t bytes);
    /// Drops the wake hook (it holds the session): the exchange is over.
    void release();
    /// The answer's status (200, or the refusal's); 0 before either.
    unsigned answer_status() const;

    static constexpr std::size_t max_unsent = 4 * 1024 * 1024;

private:
    void queue(std::string bytes, bool last, std::unique_lock<std::mutex>& lock);

    const std::string request_id_;
    const unsigned version_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::function<void()> wake_;
    bool wake_pending_ = false;
    // The body's spool.
    const bool body_streams_;
    int spool_ = -1;
    std::uint64_t spooled_ = 0, read_ = 0;
    bool body_done_ = false;
    std::string body_error_;
    error_kind body_error_kind_ = error_kind::retryable;
    // The answer.
    std::string queued_;
    std::size_t unsent_ = 0;  // queued or being written
    bool anything_taken_ = false, head_queued_ = false, last_ = false, broken_ = false, gone_ = false;
    bool chunked_ = true;  // false for HTTP/1.0: the body ends with the connection
    unsigned status_ = 0;
};

}  // namespace sluice::serve
