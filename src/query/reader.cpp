// The default batch read: one get_latest (or get_as_of) per key, answered when the last is in.

#include <atomic>
#include <memory>
#include <mutex>

#include "sluice/query/reader.hpp"

namespace sluice {

void feature_reader::get_latest_many(std::uint32_t set_index, std::vector<std::string> keys,
                                     std::optional<std::int64_t> as_of_ms, latest_many_callback done) {
    using answer = result<std::optional<latest_entry>>;
    struct gather {
        std::vector<answer> answers;
        std::atomic<std::size_t> left;
        latest_many_callback done;
    };
    if (keys.empty()) {
        done({});
        return;
    }
    auto g = std::make_shared<gather>();
    g->answers.resize(keys.size(), answer(std::optional<latest_entry>{}));
    g->left.store(keys.size());
    g->done = std::move(done);
    for (std::size_t i = 0; i < keys.size(); ++i) {
        // Each slot is written by one callback only; the last one to finish hands them over.
        auto one = [g, i](answer r) {
            g->answers[i] = std::move(r);
            if (g->left.fetch_sub(1, std::memory_order_acq_rel) == 1) g->done(std::move(g->answers));
        };
        if (as_of_ms)
            get_as_of(set_index, std::move(keys[i]), *as_of_ms, std::move(one));
        else
            get_latest(set_index, std::move(keys[i]), std::move(one));
    }
}

}  // namespace sluice
