#include "pending_push.hpp"

#include <spdlog/spdlog.h>

#include <exception>
#include <string>
#include <utility>

#include "sluice/core/log.hpp"

namespace sluice::writer {

void answer_pushes(std::vector<pending_push>& waiting, const write_batch& batch, bool durable) {
    for (auto& p : waiting) {
        std::vector<std::pair<std::size_t, std::string>> late;
        if (durable) {
            for (const auto& d : batch.dead_letters) {
                // Late events among this push's records (its own invalid items were answered already).
                if (d.source.origin() != record_origin::push || d.source.offset < p.first_seq ||
                    d.source.offset >= p.first_seq + static_cast<std::int64_t>(p.count))
                    continue;
                const auto index = static_cast<std::size_t>(d.source.offset - p.first_seq);
                if (d.reason == dead_letter_reason::late_event) late.emplace_back(index, d.error);
            }
        }
        try {
            p.done(durable, std::move(late));
        } catch (const std::exception& e) {
            module_logger(log_module::store)->error("push answer failed: {}", e.what());
        }
    }
    waiting.clear();
}

}  // namespace sluice::writer
