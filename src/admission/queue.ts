/**
 * A FIFO queue with O(1) removal from the middle (a waiter that times out or
 * whose client left leaves without a scan), as a doubly linked list.
 *
 * @module
 */

export interface QueueNode<T> {
  value: T;
  prev?: QueueNode<T>;
  next?: QueueNode<T>;
  /** False once the node has left the queue. */
  queued: boolean;
}

export class Fifo<T> {
  #head?: QueueNode<T>;
  #tail?: QueueNode<T>;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(value: T): QueueNode<T> {
    const node: QueueNode<T> = { value, prev: this.#tail, queued: true };
    if (this.#tail) this.#tail.next = node;
    else this.#head = node;
    this.#tail = node;
    this.#size++;
    return node;
  }

  shift(): T | undefined {
    const node = this.#head;
    if (!node) return undefined;
    this.remove(node);
    return node.value;
  }

  remove(node: QueueNode<T>): void {
    if (!node.queued) return;
    node.queued = false;
    if (node.prev) node.prev.next = node.next;
    else this.#head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.#tail = node.prev;
    node.prev = node.next = undefined;
    this.#size--;
  }
}
