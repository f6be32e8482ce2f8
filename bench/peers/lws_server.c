/*
 * libwebsockets peer for wschat-bench (docs/BENCHMARKS.md).
 *
 *   bench/peers/build/lws_server PORT        (bench/run.sh builds it)
 *
 * The benchmark contract: /ws/ROOM sends every message to every connection
 * in ROOM, the sender included; /echo echoes. Written in the style of the
 * libwebsockets minimal examples: minimal-ws-server-ring (one lws_ring per
 * room with a tail per session, lws_callback_on_writable() on every member,
 * one message written per WRITEABLE callback, the oldest tail updated as
 * sessions consume) and minimal-ws-server-echo (a ring per session, with
 * lws_rx_flow_control() when it fills up).
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define ROOM_RING_DEPTH 1024
#define ECHO_RING_DEPTH 4096

/* one of these is created for each message in a ring */
struct msg {
	void *payload; /* is malloc'd, with LWS_PRE bytes before the data */
	size_t len;
	int binary;
};

struct per_session_data;

struct room {
	struct room *next;
	char name[65];
	struct lws_ring *ring; /* ringbuffer holding unsent messages */
	struct per_session_data *pss_list;
	int members;
};

/* one of these is created for each client connecting to us */
struct per_session_data {
	struct per_session_data *pss_list;
	struct lws *wsi;
	struct room *room;      /* NULL on /echo */
	uint32_t tail;
	struct lws_ring *ring;  /* /echo only */
	int flow_controlled;
};

/* one of these is created for each vhost our protocol is used with */
struct per_vhost_data {
	struct lws_context *context;
	struct lws_vhost *vhost;
	const struct lws_protocols *protocol;
	struct room *rooms;
};

static void
destroy_message(void *_msg)
{
	struct msg *msg = _msg;

	free(msg->payload);
	msg->payload = NULL;
	msg->len = 0;
}

static int
valid_room(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

static struct room *
get_room(struct per_vhost_data *vhd, const char *name)
{
	struct room *r;

	for (r = vhd->rooms; r; r = r->next)
		if (!strcmp(r->name, name))
			return r;

	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	strcpy(r->name, name);
	r->ring = lws_ring_create(sizeof(struct msg), ROOM_RING_DEPTH, destroy_message);
	if (!r->ring) {
		free(r);
		return NULL;
	}
	r->next = vhd->rooms;
	vhd->rooms = r;

	return r;
}

static void
put_room(struct per_vhost_data *vhd, struct room *room)
{
	struct room **pr;

	if (--room->members)
		return;
	for (pr = &vhd->rooms; *pr; pr = &(*pr)->next)
		if (*pr == room) {
			*pr = room->next;
			break;
		}
	lws_ring_destroy(room->ring);
	free(room);
}

static int
callback_bench(struct lws *wsi, enum lws_callback_reasons reason,
	       void *user, void *in, size_t len)
{
	struct per_session_data *pss = (struct per_session_data *)user;
	struct per_vhost_data *vhd = (struct per_vhost_data *)
			lws_protocol_vh_priv_get(lws_get_vhost(wsi),
					lws_get_protocol(wsi));
	const struct msg *pmsg;
	struct msg amsg;
	char uri[128];
	int m, n;

	switch (reason) {
	case LWS_CALLBACK_PROTOCOL_INIT:
		vhd = lws_protocol_vh_priv_zalloc(lws_get_vhost(wsi),
				lws_get_protocol(wsi),
				sizeof(struct per_vhost_data));
		vhd->context = lws_get_context(wsi);
		vhd->protocol = lws_get_protocol(wsi);
		vhd->vhost = lws_get_vhost(wsi);
		break;

	case LWS_CALLBACK_ESTABLISHED:
		pss->wsi = wsi;
		if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0)
			return -1;
		if (!strcmp(uri, "/echo")) {
			pss->ring = lws_ring_create(sizeof(struct msg),
						    ECHO_RING_DEPTH, destroy_message);
			if (!pss->ring)
				return 1;
			pss->tail = 0;
			break;
		}
		if (strncmp(uri, "/ws/", 4) || !valid_room(uri + 4))
			return -1;
		pss->room = get_room(vhd, uri + 4);
		if (!pss->room)
			return -1;
		pss->room->members++;
		/* add ourselves to the room's list of live pss held in the room */
		lws_ll_fwd_insert(pss, pss_list, pss->room->pss_list);
		pss->tail = lws_ring_get_oldest_tail(pss->room->ring);
		break;

	case LWS_CALLBACK_CLOSED:
		if (pss->ring) {
			lws_ring_destroy(pss->ring);
			pss->ring = NULL;
			break;
		}
		if (!pss->room)
			break;
		/* remove our closing pss from the room's list of live pss */
		lws_ll_fwd_remove(struct per_session_data, pss_list,
				  pss, pss->room->pss_list);
		put_room(vhd, pss->room);
		pss->room = NULL;
		break;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (pss->ring) { /* /echo */
			pmsg = lws_ring_get_element(pss->ring, &pss->tail);
			if (!pmsg)
				break;
			m = lws_write(wsi, ((unsigned char *)pmsg->payload) + LWS_PRE,
				      pmsg->len, pmsg->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
			if (m < (int)pmsg->len) {
				lwsl_err("ERROR %d writing to ws socket\n", m);
				return -1;
			}
			lws_ring_consume_single_tail(pss->ring, &pss->tail, 1);
			if (lws_ring_get_element(pss->ring, &pss->tail))
				lws_callback_on_writable(wsi);
			if (pss->flow_controlled &&
			    (int)lws_ring_get_count_free_elements(pss->ring) > ECHO_RING_DEPTH - 5) {
				lws_rx_flow_control(wsi, 1);
				pss->flow_controlled = 0;
			}
			break;
		}
		if (!pss->room)
			break;
		pmsg = lws_ring_get_element(pss->room->ring, &pss->tail);
		if (!pmsg)
			break;

		/* notice we allowed for LWS_PRE in the payload already */
		m = lws_write(wsi, ((unsigned char *)pmsg->payload) + LWS_PRE,
			      pmsg->len, pmsg->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
		if (m < (int)pmsg->len) {
			lwsl_err("ERROR %d writing to ws socket\n", m);
			return -1;
		}

		lws_ring_consume_and_update_oldest_tail(
			pss->room->ring,	/* lws_ring object */
			struct per_session_data, /* type of objects with tails */
			&pss->tail,		/* tail of guy doing the consuming */
			1,			/* number of payload objects being consumed */
			pss->room->pss_list,	/* head of list of objects with tails */
			tail,			/* member name of tail in objects with tails */
			pss_list		/* member name of next object in objects with tails */
		);

		/* more to do for us? */
		if (lws_ring_get_element(pss->room->ring, &pss->tail))
			/* come back as soon as we can write more */
			lws_callback_on_writable(pss->wsi);
		break;

	case LWS_CALLBACK_RECEIVE:
		if (pss->ring) { /* /echo */
			n = (int)lws_ring_get_count_free_elements(pss->ring);
			if (!n) {
				lwsl_user("dropping!\n");
				break;
			}
			amsg.len = len;
			amsg.binary = lws_frame_is_binary(wsi);
			amsg.payload = malloc(LWS_PRE + len);
			if (!amsg.payload) {
				lwsl_user("OOM: dropping\n");
				break;
			}
			memcpy((char *)amsg.payload + LWS_PRE, in, len);
			if (!lws_ring_insert(pss->ring, &amsg, 1)) {
				destroy_message(&amsg);
				lwsl_user("dropping!\n");
				break;
			}
			lws_callback_on_writable(wsi);
			if (n < 3 && !pss->flow_controlled) {
				pss->flow_controlled = 1;
				lws_rx_flow_control(wsi, 0);
			}
			break;
		}
		if (!pss->room)
			break;
		n = (int)lws_ring_get_count_free_elements(pss->room->ring);
		if (!n) {
			lwsl_user("dropping!\n");
			break;
		}

		amsg.len = len;
		amsg.binary = lws_frame_is_binary(wsi);
		/* notice we over-allocate by LWS_PRE */
		amsg.payload = malloc(LWS_PRE + len);
		if (!amsg.payload) {
			lwsl_user("OOM: dropping\n");
			break;
		}

		memcpy((char *)amsg.payload + LWS_PRE, in, len);
		if (!lws_ring_insert(pss->room->ring, &amsg, 1)) {
			destroy_message(&amsg);
			lwsl_user("dropping!\n");
			break;
		}

		/*
		 * let everybody in the room know we want to write something on
		 * them as soon as they are ready
		 */
		lws_start_foreach_llp(struct per_session_data **,
				      ppss, pss->room->pss_list) {
			lws_callback_on_writable((*ppss)->wsi);
		} lws_end_foreach_llp(ppss, pss_list);
		break;

	default:
		break;
	}

	return 0;
}

static struct lws_protocols protocols[] = {
	{ "wschat-bench", callback_bench, sizeof(struct per_session_data), 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 } /* terminator */
};

static int interrupted;

static void
sigint_handler(int sig)
{
	(void)sig;
	interrupted = 1;
}

int
main(int argc, const char **argv)
{
	struct lws_context_creation_info info;
	struct lws_context *context;
	struct rlimit rl;
	int n = 0;

	/* as many connections as the hard limit allows */
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	signal(SIGINT, sigint_handler);
	signal(SIGTERM, sigint_handler);
	lws_set_log_level(LLL_USER | LLL_ERR | LLL_WARN, NULL);

	memset(&info, 0, sizeof info);
	info.port = argc > 1 ? atoi(argv[1]) : 8000;
	info.iface = "127.0.0.1";
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;

	context = lws_create_context(&info);
	if (!context) {
		lwsl_err("lws init failed\n");
		return 1;
	}
	lwsl_user("lws peer listening on :%d\n", info.port);

	while (n >= 0 && !interrupted)
		n = lws_service(context, 0);

	lws_context_destroy(context);

	return 0;
}
