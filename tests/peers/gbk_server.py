"""The tutorial's server: accept one client, print its GBK text, reply in GBK, close.

Usage: gbk_server.py REPLY
Binds an ephemeral port on 127.0.0.1 and, once listening, prints "PORT:<n>" on stdout so the
test knows where to connect without guessing or sleeping. Then prints "GOT:<text>" with the
client's bytes decoded as GBK, and sends REPLY encoded as GBK.
"""
import socket
import sys

reply = sys.argv[1]
tcp_server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp_server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp_server_socket.bind(("127.0.0.1", 0))
tcp_server_socket.listen(128)
sys.stdout.write("PORT:%d\n" % tcp_server_socket.getsockname()[1])
sys.stdout.flush()
tcp_server_socket.settimeout(20)
client_socket, client_addr = tcp_server_socket.accept()
client_socket.settimeout(20)
recv_data = client_socket.recv(1024)
sys.stdout.buffer.write(("GOT:" + recv_data.decode("gbk") + "\n").encode("utf-8"))
sys.stdout.flush()
client_socket.send(reply.encode("gbk"))
client_socket.close()
tcp_server_socket.close()
