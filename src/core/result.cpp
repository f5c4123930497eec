#include "sluice/core/result.hpp"

namespace sluice {

const char* to_string(error_kind k) {
    switch (k) {
        case error_kind::retryable: return "retryable";
        case error_kind::permanent: return "permanent";
        case error_kind::bad_record: return "bad record";
        case error_kind::late_event: return "late event";
        case error_kind::not_owned: return "not owned";
    }
    return "unknown";
}

}  // namespace sluice
