#include "sluice/core/record.hpp"
#include "sluice/core/stage_trace.hpp"

namespace sluice {

const char* to_string(dead_letter_reason r) {
    switch (r) {
        case dead_letter_reason::invalid: return "invalid";
        case dead_letter_reason::too_large: return "too_large";
        case dead_letter_reason::tombstone: return "tombstone";
        case dead_letter_reason::late_event: return "late_event";
        case dead_letter_reason::quarantined: return "quarantined";
    }
    return "invalid";
}

const char* to_string(trace_stage s) {
    switch (s) {
        case trace_stage::consumed: return "consumed";
        case trace_stage::parsed: return "parsed";
        case trace_stage::batched: return "batched";
        case trace_stage::memory: return "memory";
        case trace_stage::committed: return "committed";
        case trace_stage::redis: return "redis";
    }
    return "unknown";
}

}  // namespace sluice
