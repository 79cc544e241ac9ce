"""Connects to a NATS server with a .creds file through nats-py and makes a
round trip on subjects the credentials allow. Used by creds/tests/broker.rs
to show that the grants comment block does not break nats-py's parser.

usage: python3 nats_py_creds.py URL CREDS SUB_SUBJECT PUB_SUBJECT WAIT_SECONDS
"""

import asyncio
import sys

import nats


async def main(url: str, creds: str, sub_subject: str, pub_subject: str, wait: str) -> None:
    nc = await nats.connect(
        url,
        user_credentials=creds,
        name="nats-py",
        allow_reconnect=False,
        connect_timeout=5,
    )
    sub = await nc.subscribe(sub_subject)
    await nc.flush()
    await nc.publish(pub_subject, b"from nats-py")
    msg = await sub.next_msg(timeout=float(wait))
    print(msg.subject)
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
