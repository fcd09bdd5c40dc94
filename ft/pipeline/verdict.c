/* The pipeline's decision tables (verdict.h). */
#include "verdict.h"

enum incoming_verdict incoming_error_verdict(enum kg_err_kind kind,
					     enum incoming_phase phase)
{
	if (phase == INCOMING_APPLYING)
		return INCOMING_DROP;
	bool in_epoch = phase == INCOMING_IN_EPOCH;
	switch (kind) {
	case KG_ERR_CORRUPT:
	case KG_ERR_AUTH:
		return INCOMING_KEEP;
	case KG_ERR_TIMEOUT:
	case KG_ERR_PEER_GONE:
	case KG_ERR_REFUSED:
		return INCOMING_FAIL_OVER;
	case KG_ERR_UNSPECIFIED:
	case KG_ERR_INVALID:
	case KG_ERR_IO:
	case KG_ERR_NO_SPACE:
	case KG_ERR_NOMEM:
	case KG_ERR_GUEST:
		return in_epoch ? INCOMING_DROP : INCOMING_FAIL_OVER;
	}
	return INCOMING_DROP;
}

enum incoming_verdict incoming_beats_verdict(enum incoming_verdict v,
					     bool heard)
{
	switch (v) {
	case INCOMING_FAIL_OVER:
		return heard ? INCOMING_KEEP : INCOMING_FAIL_OVER;
	case INCOMING_KEEP:
	case INCOMING_DROP:
		break;
	}
	return v;
}

enum standby_verdict standby_begin_verdict(enum kg_err_kind kind,
					   bool holding)
{
	switch (kind) {
	case KG_ERR_TIMEOUT:
		return holding ? STANDBY_FAIL_OVER : STANDBY_WAIT;
	case KG_ERR_UNSPECIFIED:
	case KG_ERR_INVALID:
	case KG_ERR_IO:
	case KG_ERR_NO_SPACE:
	case KG_ERR_NOMEM:
	case KG_ERR_CORRUPT:
	case KG_ERR_AUTH:
	case KG_ERR_PEER_GONE:
	case KG_ERR_REFUSED:
	case KG_ERR_GUEST:
		return STANDBY_WAIT;
	}
	return STANDBY_WAIT;
}

enum receive_verdict receive_begin_verdict(enum kg_err_kind kind)
{
	switch (kind) {
	case KG_ERR_AUTH:
		return RECEIVE_LISTEN_AGAIN;
	case KG_ERR_UNSPECIFIED:
	case KG_ERR_INVALID:
	case KG_ERR_IO:
	case KG_ERR_NO_SPACE:
	case KG_ERR_NOMEM:
	case KG_ERR_CORRUPT:
	case KG_ERR_TIMEOUT:
	case KG_ERR_PEER_GONE:
	case KG_ERR_REFUSED:
	case KG_ERR_GUEST:
		return RECEIVE_GIVE_UP;
	}
	return RECEIVE_GIVE_UP;
}

enum protect_verdict protect_connect_verdict(enum kg_err_kind kind)
{
	switch (kind) {
	case KG_ERR_REFUSED:
		return PROTECT_SECONDARY_GONE;
	case KG_ERR_UNSPECIFIED:
	case KG_ERR_INVALID:
	case KG_ERR_IO:
	case KG_ERR_NO_SPACE:
	case KG_ERR_NOMEM:
	case KG_ERR_CORRUPT:
	case KG_ERR_AUTH:
	case KG_ERR_TIMEOUT:
	case KG_ERR_PEER_GONE:
	case KG_ERR_GUEST:
		return PROTECT_MAY_HOLD_REPLICA;
	}
	return PROTECT_MAY_HOLD_REPLICA;
}

enum doubt_verdict migrate_doubt_verdict(enum kg_err_kind kind)
{
	switch (kind) {
	case KG_ERR_REFUSED:
		return DOUBT_NOT_RUNNING;
	case KG_ERR_UNSPECIFIED:
	case KG_ERR_INVALID:
	case KG_ERR_IO:
	case KG_ERR_NO_SPACE:
	case KG_ERR_NOMEM:
	case KG_ERR_CORRUPT:
	case KG_ERR_AUTH:
	case KG_ERR_TIMEOUT:
	case KG_ERR_PEER_GONE:
	case KG_ERR_GUEST:
		return DOUBT_RETRY;
	}
	return DOUBT_RETRY;
}
