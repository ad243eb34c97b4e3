"""A notification consumer as Ceilometer is one: oslo.messaging's own
listener (Debian's python3-oslo.messaging) on the cinder exchange's
notifications topic. Prints each notification it is handed as one JSON
line on stdout, and "ready" once it listens.

    python3 oslo-listener.py <transport_url> [exchange] [topic] [durable]
"""
import json
import sys
import threading

from oslo_config import cfg
import oslo_messaging


def main():
    url = sys.argv[1]
    exchange = sys.argv[2] if len(sys.argv) > 2 else 'cinder'
    topic = sys.argv[3] if len(sys.argv) > 3 else 'notifications'
    durable = len(sys.argv) > 4 and sys.argv[4] == 'true'
    conf = cfg.ConfigOpts()
    conf([], project='volstate-test')
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    conf.set_override('amqp_durable_queues', durable, group='oslo_messaging_rabbit')

    class Endpoint(object):
        def _out(self, priority, ctxt, publisher_id, event_type, payload, metadata):
            print(json.dumps({
                'priority': priority,
                'publisher_id': publisher_id,
                'event_type': event_type,
                'payload': payload,
                'message_id': metadata.get('message_id'),
                'timestamp': metadata.get('timestamp'),
                'request_id': (ctxt or {}).get('request_id'),
            }), flush=True)
            return oslo_messaging.NotificationResult.HANDLED

        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            return self._out('INFO', ctxt, publisher_id, event_type, payload, metadata)

        def error(self, ctxt, publisher_id, event_type, payload, metadata):
            return self._out('ERROR', ctxt, publisher_id, event_type, payload, metadata)

    targets = [oslo_messaging.Target(topic=topic, exchange=exchange)]
    listener = oslo_messaging.get_notification_listener(
        transport, targets, [Endpoint()], executor='threading')
    # One handler thread (the default is a pool of 64): the lines come out in the order the broker delivered.
    conf.set_override('executor_thread_pool_size', 1)
    listener.start()
    print('ready', flush=True)
    try:
        # Listen until killed: nothing to wait for but the end.
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
        listener.wait()


if __name__ == '__main__':
    main()
