/*
 * The real verbs table: libibverbs and librdmacm. Some verbs are static
 * inline functions in <infiniband/verbs.h> (poll_cq, post_send,
 * post_recv); the wrappers give them addresses.
 */
#include "rdma_ops.h"

static int v_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	return ibv_poll_cq(cq, n, wc);
}

static int v_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr,
		       struct ibv_send_wr **bad)
{
	return ibv_post_send(qp, wr, bad);
}

static int v_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr,
		       struct ibv_recv_wr **bad)
{
	return ibv_post_recv(qp, wr, bad);
}

static struct ibv_mr *v_reg_mr(struct ibv_pd *pd, void *addr, size_t len,
			       int access)
{
	return ibv_reg_mr(pd, addr, len, access);
}

const struct kg_rdma_ops kg_rdma_verbs = {
	.get_device_list = ibv_get_device_list,
	.free_device_list = ibv_free_device_list,
	.wc_status_str = ibv_wc_status_str,
	.event_str = rdma_event_str,
	.create_event_channel = rdma_create_event_channel,
	.destroy_event_channel = rdma_destroy_event_channel,
	.create_id = rdma_create_id,
	.destroy_id = rdma_destroy_id,
	.migrate_id = rdma_migrate_id,
	.resolve_addr = rdma_resolve_addr,
	.resolve_route = rdma_resolve_route,
	.bind_addr = rdma_bind_addr,
	.listen = rdma_listen,
	.connect = rdma_connect,
	.accept = rdma_accept,
	.reject = rdma_reject,
	.disconnect = rdma_disconnect,
	.get_cm_event = rdma_get_cm_event,
	.ack_cm_event = rdma_ack_cm_event,
	.create_qp = rdma_create_qp,
	.destroy_qp = rdma_destroy_qp,
	.alloc_pd = ibv_alloc_pd,
	.dealloc_pd = ibv_dealloc_pd,
	.create_cq = ibv_create_cq,
	.destroy_cq = ibv_destroy_cq,
	.poll_cq = v_poll_cq,
	.reg_mr = v_reg_mr,
	.dereg_mr = ibv_dereg_mr,
	.post_send = v_post_send,
	.post_recv = v_post_recv,
};
